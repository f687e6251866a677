//! Builds the one HTTP client of a run from the [`Config`], with every policy set explicitly.
//!
//! TLS is rustls with the ring provider and webpki-roots' built-in Mozilla roots, handed to
//! reqwest preconfigured: the binary then needs nothing from the file system (it runs in a
//! FROM scratch image, where the platform verifier finds no roots), and start-up does not
//! pay aws-lc-rs's entropy seeding. CA_BUNDLE adds roots; it never replaces the built-ins.
//! Redirects are never followed: a token endpoint that redirects is misconfigured, and
//! following it would resend the client credentials to wherever `Location` points.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::config::Config;

/// Sent with every request, so Bitbucket's logs can tell this tool apart.
pub const USER_AGENT: &str = concat!("oauth-token-pipe/", env!("CARGO_PKG_VERSION"));

/// The longest a TCP connect may take before it counts as a transient failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The built-in Mozilla roots plus the CA_BUNDLE certificates: extra CAs add trust, they
/// never take the built-in trust away (a proxy's CA must not break bitbucket.org).
pub fn root_store(extra: &[CertificateDer<'static>]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots
            .add(cert.clone())
            .context("CA_BUNDLE holds a certificate that is not a usable CA")?;
    }
    Ok(roots)
}

/// The client for all requests of one run.
pub fn build(config: &Config) -> anyhow::Result<reqwest::Client> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in &config.extra_roots {
        roots
            .add(cert.clone())
            .context("CA_BUNDLE holds a certificate that is not a usable CA")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();

    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        // The per-request deadline is applied by the caller from the run's remaining time.
        .referer(false)
        // reqwest's own retry of protocol NACKs would hide attempts from our accounting.
        .retry(reqwest::retry::never())
        .build()
        .context("building the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_bundle_adds_to_the_builtin_roots() {
        let builtin = root_store(&[]).unwrap().len();
        assert!(builtin > 100, "webpki-roots ships the Mozilla set");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let store = root_store(&[CertificateDer::from(ca.der().to_vec())]).unwrap();
        assert_eq!(store.len(), builtin + 1);
    }
}
