//! The certificates the fake presents, valid or deliberately wrong, signed by a CA made at
//! run time ([`super::server::tls`]).

use tokio_rustls::rustls;

use super::server::tls::{Names, certificates as make};

/// The certificate the fake presents.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Cert {
    /// Valid for localhost and 127.0.0.1, signed by the run's CA.
    #[default]
    Valid,
    /// Signed by the run's CA but only for bitbucket.example.
    WrongName,
    /// Signed by the run's CA, for the right names, but expired in 2021.
    Expired,
}

/// A fresh CA's PEM and a server configuration presenting a leaf of `kind` signed by it.
pub(super) fn certificates(kind: &Cert) -> (String, rustls::ServerConfig) {
    let hosts: &[&str] = match kind {
        Cert::WrongName => &["bitbucket.example"],
        // fake.test: a name that is not loopback, for the proxy tests (the test proxy
        // resolves it to 127.0.0.1; the client never resolves it itself).
        _ => &["localhost", "127.0.0.1", "fake.test"],
    };
    make(&Names {
        ca: "oauth-token-pipe test CA",
        leaf: Some("fake bitbucket"),
        hosts,
        expired: *kind == Cert::Expired,
    })
}
