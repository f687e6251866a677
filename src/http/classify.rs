//! Turns a transport error into a transient or fatal attempt with a message that says what
//! to do. TLS certificate problems are fatal: retrying cannot fix them.

use super::{Attempt, Call, host};
use crate::error::Error;
use crate::report::quote_remote;

/// Turns a transport error into a transient or fatal attempt with a message that says what
/// to do. TLS certificate problems are fatal: retrying cannot fix them.
pub(super) fn classify(error: &reqwest::Error, call: &Call<'_>) -> Attempt {
    let chain = error_chain(error);
    if let Some(tls) = find_rustls_error(error) {
        let host = host(call.url);
        let hint = match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => format!(
                "the certificate of {host} is not signed by a trusted CA. If a proxy intercepts TLS or the server uses a private CA, add that CA to CA_BUNDLE (a PEM file)."
            ),
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            | rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            ) => {
                format!(
                    "the certificate presented by {host} is not valid for the name {host}: check the host in the URL."
                )
            }
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
            | rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
                ..
            })
            | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYet)
            | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYetContext {
                ..
            }) => format!(
                "the certificate of {host} is expired or not yet valid: check the server's certificate and this machine's clock."
            ),
            _ => format!("TLS with {host} failed."),
        };
        return Attempt::Fatal(Error::provider(format!(
            "The {} to {} failed: {hint} ({chain})",
            call.name, call.url
        )));
    }
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    Attempt::Transient {
        reason: format!("{kind}: {chain}"),
        wait: None,
        // A failure to connect never reached the server; anything later may have.
        sent: !error.is_connect(),
    }
}

fn find_rustls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error::source() skips the error it wraps (it returns the wrapped error's
        // source), and rustls errors arrive wrapped in two io::Errors: descend with get_ref.
        source = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The error and its causes, innermost last, without reqwest's URL (already in the message).
fn error_chain(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    quote_remote(&parts.join(": "), 500)
}
