//! `oauth-token-pipe`: fetch a short-lived access token (a Bitbucket Cloud OAuth consumer's,
//! any OAuth 2.0 server's, a GitHub App's, or one traded for the CI's own identity), validate
//! it with a real API call, and hand it on (a dotenv file, GitHub outputs, a child process's
//! environment, git's credential protocol) without ever printing it.
//!
//! The layers, each importing only those above it in this list:
//! - [`error`], [`report`], [`token`], [`vars`], [`platform`], [`safe_fs`]: leaves (failures,
//!   the log, what a token is, raw variables, which CI runs us, opening hostile folders' files);
//! - [`http`]: the client and the one way requests are sent;
//! - [`provider`]: one folder per token source, behind the [`provider::Provider`] trait;
//! - [`deliver`], [`store`]: handing the token on, and reuse;
//! - [`config`]: the environment read once and parsed into each layer's section;
//! - [`commands`] and [`cli`]: the subcommands, the only code that sees the whole config.
//!
//! The binary is a thin wrapper around [`run`]; everything the user sees goes through a
//! [`report::Reporter`], and every failure is an [`error::Error`] whose kind is the exit code.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod error;
pub mod http;
pub mod platform;
pub mod provider;
pub mod report;
pub mod safe_fs;
pub mod store;
pub mod token;
pub mod vars;

use std::ffi::OsString;

pub use commands::{Io, run};

/// Whether the log should be coloured: NO_COLOR (https://no-color.org) turns it off.
pub fn color_from_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> bool {
    let (raw, _) = config::read_env(vars);
    config::color_enabled(&raw)
}
