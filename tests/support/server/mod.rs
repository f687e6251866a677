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

pub mod check;
pub mod git;
pub mod http;
pub mod reply;
pub mod tls;
