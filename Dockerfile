# The Bitbucket Pipe image: the static oauth-token-pipe binary and nothing else.
#
# The binary is built before the image (no compiler, base image or network is needed here):
#   scripts/build-static.sh
#   docker build --build-arg VERSION=0.1.0 -t oauthtokenpipe/oauth-token-pipe:0.1.0 .
# A test (tests/cases/pipe_yml.rs) checks that VERSION's default equals the crate version.

# Nothing to pull: the binary is fully static (musl, rustls with the built-in Mozilla roots)
# and reads no file from the image, not even /etc/ssl or /etc/passwd.
FROM scratch

# The crate version; also the image tag pipe.yml names.
ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="oauth-token-pipe" \
      org.opencontainers.image.description="Fetch, validate and hand on a Bitbucket Cloud OAuth access token in CI without ever printing it" \
      org.opencontainers.image.source="https://bitbucket.org/oauth-token-pipe/oauth-token-pipe" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# .dockerignore lets only this one file into the build context.
COPY target/x86_64-unknown-linux-musl/release/oauth-token-pipe /oauth-token-pipe

# No USER: Bitbucket runs pipe containers as root, and the pipe relies on that to give the
# token file to the owner of the mounted clone dir (a build may run as another user).
# Exec form: the binary is PID 1 and receives signals directly; there is no shell to run one.
ENTRYPOINT ["/oauth-token-pipe"]
