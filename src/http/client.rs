//! The HTTP settings of a run (TIMEOUT, RETRIES, CA_BUNDLE, the proxy variables) and the
//! one function that builds the client from them, with every policy set explicitly.
//!
//! TLS is rustls with the ring provider and webpki-roots' built-in Mozilla roots, handed to
//! reqwest preconfigured: the binary then needs nothing from the file system (it runs in a
//! FROM scratch image, where the platform verifier finds no roots), and start-up does not
//! pay aws-lc-rs's entropy seeding. CA_BUNDLE adds roots; it never replaces the built-ins.
//! Redirects are never followed: an endpoint that redirects is misconfigured, and following
//! it would resend the credentials to wherever `Location` points.
//!
//! Proxies are read from our own variables rather than left to reqwest's environment
//! lookup, because two rules matter more than convenience: a loopback or plain-http URL
//! never goes through a proxy (plain http carries `Authorization: Basic` in clear, and the
//! proxy would see it), and `localhost` is pinned to the loopback addresses, so the name that
//! unlocks plain http cannot be made to resolve anywhere else.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use url::Url;

use crate::vars::{self, Problems, Raw, shown};

/// Sent with every request, so the provider's logs can tell this tool apart.
pub const USER_AGENT: &str = concat!("oauth-token-pipe/", env!("CARGO_PKG_VERSION"));
/// Seconds for the whole run, retries included, unless TIMEOUT says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Extra attempts after a transient failure, unless RETRIES says otherwise.
pub const DEFAULT_RETRIES: u64 = 3;
const MAX_TIMEOUT_SECS: u64 = 3600;
const MAX_RETRIES: u64 = 10;
/// The longest a TCP connect may take before it counts as a transient failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How requests are made.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time allowed for the whole run, retries included.
    pub timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// Extra trusted CAs from CA_BUNDLE, added to the built-in roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The proxy for https requests to hosts that are not loopback.
    pub proxy: Option<Url>,
    /// NO_PROXY, as written.
    pub no_proxy: Option<String>,
}

impl Settings {
    /// Reads TIMEOUT, RETRIES, CA_BUNDLE, HTTPS_PROXY/ALL_PROXY and NO_PROXY.
    pub fn parse(raw: &Raw, problems: &mut Problems) -> Settings {
        let timeout = vars::number(
            raw,
            "TIMEOUT",
            DEFAULT_TIMEOUT_SECS,
            (1, MAX_TIMEOUT_SECS),
            "seconds",
            problems,
        );
        let retries = vars::number(
            raw,
            "RETRIES",
            DEFAULT_RETRIES,
            (0, MAX_RETRIES),
            "extra attempts",
            problems,
        );
        let extra_roots = match raw.get("CA_BUNDLE") {
            None => Vec::new(),
            Some(path) => read_ca_bundle(path).unwrap_or_else(|problem| {
                problems.push("CA_BUNDLE", problem);
                Vec::new()
            }),
        };
        let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .into_iter()
            .find_map(|name| raw.get(name).map(|value| (name, value)))
            .and_then(|(name, value)| match Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") => {
                    Some(url)
                }
                _ => {
                    problems.push(name, format!("({}) is not a proxy URL: give one such as http://proxy.example:3128, or unset it.", shown(value)));
                    None
                }
            });
        let no_proxy = raw
            .get("NO_PROXY")
            .or_else(|| raw.get("no_proxy"))
            .map(str::to_owned);
        Settings {
            timeout: Duration::from_secs(timeout),
            retries: u32::try_from(retries).unwrap_or(0),
            extra_roots,
            proxy,
            no_proxy,
        }
    }
}

fn read_ca_bundle(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let fix = "set CA_BUNDLE to a PEM file of CA certificates, or leave it empty to trust only the built-in roots";
    let shown = shown(path);
    let bytes = read_capped(path).map_err(|e| format!("({shown}) cannot be read ({e}): {fix}."))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Err(e) => Err(format!("({shown}) is not valid PEM ({e}): {fix}.")),
        Ok(certs) if certs.is_empty() => Err(format!("({shown}) holds no PEM certificate: {fix}.")),
        Ok(certs) => Ok(certs),
    }
}

/// A CA bundle is at most a few hundred KiB; a FIFO or `/dev/zero` must not hang or fill us.
fn read_capped(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    const MAX: u64 = 4 * 1024 * 1024;
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX {
        return Err(std::io::Error::other("larger than 4 MiB"));
    }
    Ok(bytes)
}

/// The built-in Mozilla roots plus the CA_BUNDLE certificates: extra CAs add trust, they
/// never take the built-in trust away (a proxy's CA must not break the public endpoints).
fn root_store(extra: &[CertificateDer<'static>]) -> anyhow::Result<RootCertStore> {
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

/// Whether a request to `url` goes direct, not through the proxy.
pub fn is_direct(settings: &Settings, url: &Url) -> bool {
    settings.proxy.is_none()
        || url.scheme() != "https"
        || vars::is_loopback(url)
        || bypasses(settings.no_proxy.as_deref().unwrap_or_default(), url)
}

/// The client for all requests of one run, and its TLS configuration (for the one
/// connection opened ahead of its request, `super::prewarm`).
pub fn build(settings: &Settings) -> anyhow::Result<(reqwest::Client, Arc<rustls::ClientConfig>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(root_store(&settings.extra_roots)?)
        .with_no_client_auth();
    let mut prewarm_tls = tls.clone();
    prewarm_tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        // The per-request deadline is applied by the caller from the run's remaining time.
        .referer(false)
        // reqwest's own retry of protocol NACKs would hide attempts from our accounting.
        .retry(reqwest::retry::never())
        // Only the proxy below, never one reqwest finds in the process environment.
        .no_proxy()
        .resolve_to_addrs(
            "localhost",
            &[
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            ],
        );
    if let Some(proxy_url) = settings.proxy.clone() {
        let rules = settings.clone();
        builder = builder.proxy(reqwest::Proxy::custom(move |url: &Url| {
            (!is_direct(&rules, url)).then(|| proxy_url.clone())
        }));
    }
    let client = builder.build().context("building the HTTP client")?;
    Ok((client, Arc::new(prewarm_tls)))
}

/// Whether NO_PROXY (comma-separated; `*` for every host; a name matches itself and its
/// subdomains, with or without a leading dot; an address matches itself, with or without a
/// port) sends requests to `url` direct.
fn bypasses(no_proxy: &str, url: &Url) -> bool {
    let Some(host) = url
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
    else {
        return false;
    };
    let port = url.port_or_known_default();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            let entry = entry.to_ascii_lowercase();
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = match entry.rsplit_once(':') {
                Some((n, p)) if !n.contains(':') || n.ends_with(']') => {
                    (n.trim_matches(['[', ']']).to_owned(), p.parse::<u16>().ok())
                }
                _ => (entry.trim_matches(['[', ']']).to_owned(), None),
            };
            if entry_port.is_some_and(|p| Some(p) != port) {
                return false;
            }
            let name = name.trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_hosts_domains_and_ports() {
        let url = |u: &str| Url::parse(u).unwrap();
        let api = url("https://api.bitbucket.org/2.0");
        for list in [
            "*",
            "bitbucket.org",
            ".bitbucket.org",
            "x, api.bitbucket.org",
            "api.bitbucket.org:443",
        ] {
            assert!(bypasses(list, &api), "{list}");
        }
        for list in ["", "bucket.org", "api.bitbucket.org:8443", "example.com"] {
            assert!(!bypasses(list, &api), "{list}");
        }
        assert!(bypasses("10.0.0.1", &url("https://10.0.0.1:8443/")));
        assert!(bypasses("::2", &url("https://[::2]/")));
    }

    #[test]
    fn ca_bundle_adds_to_the_builtin_roots() {
        let builtin = webpki_roots::TLS_SERVER_ROOTS.len();
        assert!(builtin > 100, "webpki-roots ships the Mozilla set");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let store = root_store(&[CertificateDer::from(ca.der().to_vec())]).unwrap();
        assert_eq!(store.len(), builtin + 1);
        // And build() uses exactly this store: a bundle that is not a CA fails the build.
        let settings = Settings {
            timeout: Duration::from_secs(1),
            retries: 0,
            extra_roots: vec![CertificateDer::from(vec![1, 2, 3])],
            proxy: None,
            no_proxy: None,
        };
        assert!(build(&settings).is_err());
    }
}
