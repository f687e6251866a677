//! The one integration-test binary: every test spawns the real `oauth-token-pipe` against a
//! real HTTPS fake Bitbucket on loopback.

mod support;

mod cases {
    mod action;
    mod beyond;
    mod canary;
    mod docs;
    mod faults;
    mod federation;
    mod fuzz;
    mod github;
    mod github_app;
    mod github_app_examples;
    mod github_app_faults;
    mod hardening;
    mod oauth2;
    mod packaging;
    mod pipe;
    mod pipe_answers;
    mod pipe_yml;
    mod release;
    mod round_trips;
    mod security_files;
    mod security_leaks;
}
