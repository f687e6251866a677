//! The machinery the four fakes (Bitbucket, GitHub, OAuth, OIDC) share: each is a real HTTPS
//! server on 127.0.0.1:0 with its own CA made at run time.
//!
//! - `tls.rs`: a fresh CA and the leaf it signs for given names.
//! - `http.rs`: [`http::Server`] (its thread, runtime and accept loop, the connections it
//!   counts, the handler panics it records) and request parsing ([`http::Request`]).
//! - `reply.rs`: [`reply::Reply`], [`reply::Fault`], writing a reply to the socket.
//! - `check.rs`: the drop check's report.
//! - `git.rs`: git's smart HTTP through `git http-backend`.
//!
//! The Bitbucket fake includes this folder (`#[path]`) so that the examples, which include
//! that fake alone, build it too; the other fakes reach it as `crate::support::server`.

use std::sync::{Mutex, MutexGuard};

pub mod check;
pub mod git;
pub mod http;
pub mod reply;
pub mod tls;

/// A fake's state, even after a handler panicked holding it: the panic is reported on drop,
/// and must not turn every later request into a second one.
pub fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
