//! The `oauth-token-pipe` binary: read the environment, run the pipe, exit with its code.

use std::io::Write;
use std::process::ExitCode;

use oauth_token_pipe::error::Exit;
use oauth_token_pipe::report::Reporter;

fn main() -> ExitCode {
    // A panic is a bug. Its payload could quote a value we hold, so report only where it
    // happened, and exit with the documented "anything else" code.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "✖ oauth-token-pipe hit an internal error{at}. This is a bug: please report it with the log above."
        );
        std::process::exit(i32::from(Exit::Failure.code()));
    }));
    let vars: Vec<_> = std::env::vars_os().collect();
    let color = oauth_token_pipe::color_from_env(vars.iter().cloned());
    // The log and GitHub's workflow commands both go to standard error; standard output is
    // git's answer, `--help`, or the `exec` child's.
    let mut log = Reporter::new(Box::new(std::io::stderr()), color);
    // The leak audit runs the test build with the log's mask off, to prove the code never
    // formats a secret itself. A release build has no such switch.
    if cfg!(debug_assertions) && std::env::var_os("OAUTH_TOKEN_PIPE_TEST_NO_MASK").is_some() {
        log = log.without_mask();
    }
    let stdin = std::io::stdin();
    let io = oauth_token_pipe::Io {
        input: &mut stdin.lock(),
        output: &mut std::io::stdout(),
    };
    let command = oauth_token_pipe::cli::parse(std::env::args_os().skip(1));
    match command.and_then(|command| oauth_token_pipe::run(command, vars, &mut log, io)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            log.fail(&error.title(), &error);
            ExitCode::from(error.exit().code())
        }
    }
}
