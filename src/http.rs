//! Sends one logical request: retries, the run's deadline, the body cap and DEBUG logging.
//!
//! Every request of a run goes through [`Http::send`], so the policies hold everywhere:
//! transient failures (connect and timeout errors, 429, 500, 502, 503, 504) are retried
//! RETRIES times with exponential backoff and jitter, honouring `Retry-After` (seconds or an
//! HTTP date) when present (Bitbucket's 429 is plain text and usually has none); nothing
//! outlives TIMEOUT; a body over 1 MiB is refused without being buffered whole; and DEBUG
//! shows requests and responses with every credential redacted. The retry loop is written
//! here rather than taken from a retry crate because its decisions depend on the run-wide
//! deadline and on the response's `Retry-After`, which is most of the logic.

use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::error::Error;
use crate::report::{Reporter, quote_remote};

/// Response bodies larger than this are refused: no token or error body comes close.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How much of a response body DEBUG shows.
const DEBUG_BODY_CHARS: usize = 2000;

/// How a request authenticates. The secret is exposed only when the header is built.
pub enum Auth<'a> {
    /// HTTP Basic with the OAuth consumer's key and secret (the token request).
    Basic {
        /// The consumer's Key.
        id: &'a str,
        /// The consumer's Secret.
        secret: &'a SecretString,
    },
    /// `Authorization: Bearer` with the access token (the validation call).
    Bearer(&'a SecretString),
}

/// One logical request, rebuilt for every attempt.
pub struct Call<'a> {
    /// What the log calls it ("token request", "validation call").
    pub name: &'static str,
    /// GET or POST.
    pub method: Method,
    /// Where it goes.
    pub url: &'a Url,
    /// How it authenticates.
    pub auth: Auth<'a>,
    /// A form-encoded body, if any.
    pub form: Option<&'static str>,
    /// Whether the response body may carry tokens (and is shown redacted in DEBUG).
    pub body_has_tokens: bool,
}

/// A response whose body was read whole (within [`MAX_BODY_BYTES`]).
#[derive(Debug)]
pub struct Response {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value as text, when present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The HTTP side of a run: the client, the deadline and the retry budget.
pub struct Http {
    client: reqwest::Client,
    deadline: Instant,
    timeout: Duration,
    retries: u32,
}

/// Why one attempt failed.
enum Attempt {
    /// Worth another try; `wait` is the server's `Retry-After`, if it sent one.
    Transient {
        reason: String,
        wait: Option<Duration>,
    },
    /// Retrying cannot help.
    Fatal(Error),
}

impl Http {
    /// An `Http` whose every request ends by `deadline`.
    pub fn new(
        client: reqwest::Client,
        deadline: Instant,
        timeout: Duration,
        retries: u32,
    ) -> Self {
        Http {
            client,
            deadline,
            timeout,
            retries,
        }
    }

    /// The instant by which the whole run must end.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Sends `call`, retrying transient failures, and returns the first response that is not
    /// transient. Any other status is returned for the caller to interpret.
    pub async fn send(&self, call: &Call<'_>, log: &mut Reporter) -> Result<Response, Error> {
        let attempts = self.retries + 1;
        for attempt in 1..=attempts {
            match self.attempt(call, log).await {
                Ok(response) => return Ok(response),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient { reason, wait }) => {
                    if attempt == attempts {
                        return Err(Error::provider(format!(
                            "The {} to {} failed {attempts} time(s); the last failure: {reason}. Bitbucket may be down or rate-limiting this consumer: try again later, or raise RETRIES and TIMEOUT.",
                            call.name,
                            host(call.url)
                        )));
                    }
                    let delay = wait.unwrap_or_else(|| backoff(attempt));
                    let left = self.deadline.saturating_duration_since(Instant::now());
                    if delay >= left {
                        let asked = if wait.is_some() {
                            "the server asked to wait"
                        } else {
                            "the next retry is due in"
                        };
                        return Err(Error::provider(format!(
                            "The {} to {} failed ({reason}), and {asked} {}, more than the {} left of TIMEOUT ({} s): try again later, or raise TIMEOUT.",
                            call.name,
                            host(call.url),
                            seconds(delay),
                            seconds(left),
                            self.timeout.as_secs()
                        )));
                    }
                    log.warn(format!(
                        "The {} failed ({reason}); retrying in {} (attempt {} of {attempts}).",
                        call.name,
                        seconds(delay),
                        attempt + 1
                    ));
                    tokio::time::sleep(delay).await;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn attempt(&self, call: &Call<'_>, log: &mut Reporter) -> Result<Response, Attempt> {
        let request = self
            .build(call)
            .map_err(|e| Attempt::Fatal(Error::Other(e)))?;
        log_request(&request, log);
        let left = self.deadline.saturating_duration_since(Instant::now());
        // A stalled attempt is a transient failure, so each attempt gets a share of TIMEOUT
        // and a hang still leaves time to retry; the last share ends at the deadline.
        let share = self.attempt_timeout().min(left);
        let exchange = async {
            let response = self.client.execute(request).await?;
            read(response).await
        };
        let response = match tokio::time::timeout(share, exchange).await {
            Err(_) if share < left => {
                return Err(Attempt::Transient {
                    reason: format!("no complete answer within {}", seconds(share)),
                    wait: None,
                });
            }
            Err(_) => {
                return Err(Attempt::Fatal(Error::provider(format!(
                    "No complete answer from {} within TIMEOUT ({} s): check that the host is reachable from this runner (proxy, firewall), or raise TIMEOUT.",
                    host(call.url),
                    self.timeout.as_secs()
                ))));
            }
            Ok(Err(ReadError::TooLarge(size))) => {
                return Err(Attempt::Fatal(Error::provider(format!(
                    "The response from {} is larger than {} bytes ({size}); refused. Check TOKEN_URL/API_URL point at Bitbucket.",
                    host(call.url),
                    MAX_BODY_BYTES
                ))));
            }
            Ok(Err(ReadError::Http(e))) => return Err(classify(&e, call)),
            Ok(Ok(response)) => response,
        };
        log_response(&response, call.body_has_tokens, log);
        if is_transient(response.status) {
            let wait = response
                .header("retry-after")
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let body = quote_remote(String::from_utf8_lossy(&response.body).trim(), 200);
            let reason = if body.is_empty() {
                format!("HTTP {}", response.status)
            } else {
                format!("HTTP {}: {body}", response.status)
            };
            return Err(Attempt::Transient { reason, wait });
        }
        if response.status.is_redirection() {
            let location = response
                .header("location")
                .map(|l| quote_remote(l, 300))
                .unwrap_or_else(|| "(no Location header)".into());
            return Err(Attempt::Fatal(Error::provider(format!(
                "The {} to {} was redirected (HTTP {}) to {location}; redirects are never followed, so the credentials are not sent elsewhere. Set {} to the final URL.",
                call.name,
                call.url,
                response.status,
                if call.body_has_tokens {
                    "TOKEN_URL"
                } else {
                    "API_URL or VALIDATE_URL"
                }
            ))));
        }
        Ok(response)
    }

    /// TIMEOUT shared equally among the attempts RETRIES allows, but never under
    /// [`MIN_ATTEMPT_TIMEOUT`]: a slow TLS handshake through a proxy must still fit.
    fn attempt_timeout(&self) -> Duration {
        (self.timeout / (self.retries + 1)).max(MIN_ATTEMPT_TIMEOUT)
    }

    fn build(&self, call: &Call<'_>) -> anyhow::Result<reqwest::Request> {
        let mut request = self
            .client
            .request(call.method.clone(), call.url.clone())
            .header(header::ACCEPT, "application/json");
        request = match &call.auth {
            Auth::Basic { id, secret } => request.basic_auth(id, Some(secret.expose_secret())),
            Auth::Bearer(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))?;
                value.set_sensitive(true);
                request.header(header::AUTHORIZATION, value)
            }
        };
        if let Some(form) = call.form {
            request = request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form);
        }
        Ok(request.build()?)
    }
}

enum ReadError {
    TooLarge(u64),
    Http(reqwest::Error),
}

impl From<reqwest::Error> for ReadError {
    fn from(e: reqwest::Error) -> Self {
        ReadError::Http(e)
    }
}

/// Reads the body chunk by chunk, stopping as soon as it passes the cap.
async fn read(mut response: reqwest::Response) -> Result<Response, ReadError> {
    if let Some(length) = response
        .content_length()
        .filter(|&l| l > MAX_BODY_BYTES as u64)
    {
        return Err(ReadError::TooLarge(length));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ReadError::TooLarge((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status: response.status(),
        headers: response.headers().clone(),
        body,
    })
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Exponential backoff with "equal jitter": half fixed, half random, so a retry after a
/// 429 never comes back immediately, and many pipelines do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(MAX_BACKOFF);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Turns a transport error into a transient or fatal attempt with a message that says what
/// to do. TLS certificate problems are fatal: retrying cannot fix them.
fn classify(error: &reqwest::Error, call: &Call<'_>) -> Attempt {
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

fn host(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("?")),
        None => url.host_str().unwrap_or("?").to_owned(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn log_request(request: &reqwest::Request, log: &mut Reporter) {
    log.debug(|| {
        let mut lines = vec![
            format!("> {} {}", request.method(), request.url()),
            format!("> user-agent: {}", crate::client::USER_AGENT),
        ];
        for (name, value) in request.headers() {
            lines.push(format!("> {name}: {}", shown_header(name, value)));
        }
        if let Some(body) = request.body().and_then(|b| b.as_bytes()) {
            lines.push(format!(
                "> {}",
                quote_remote(&String::from_utf8_lossy(body), DEBUG_BODY_CHARS)
            ));
        }
        lines.join("\n")
    });
}

fn log_response(response: &Response, body_has_tokens: bool, log: &mut Reporter) {
    log.debug(|| {
        let mut lines = vec![format!("< HTTP {}", response.status)];
        for (name, value) in &response.headers {
            lines.push(format!("< {name}: {}", shown_header(name, value)));
        }
        lines.push(format!(
            "< {}",
            shown_body(
                &response.body,
                body_has_tokens && response.status.is_success()
            )
        ));
        lines.join("\n")
    });
}

fn shown_header(name: &header::HeaderName, value: &HeaderValue) -> String {
    if value.is_sensitive()
        || name == header::AUTHORIZATION
        || name == header::PROXY_AUTHORIZATION
        || name == header::SET_COOKIE
        || name == header::COOKIE
    {
        let scheme = value
            .to_str()
            .ok()
            .and_then(|v| v.split(' ').next())
            .filter(|s| matches!(*s, "Basic" | "Bearer"));
        match scheme {
            Some(scheme) => format!("{scheme} <redacted>"),
            None => "<redacted>".into(),
        }
    } else {
        quote_remote(&String::from_utf8_lossy(value.as_bytes()), 500)
    }
}

/// A body for DEBUG. In a successful token response every token-bearing JSON field is
/// replaced by its length; a non-JSON success body from the token endpoint is not shown at
/// all, since it could carry a token in a form we do not parse.
fn shown_body(body: &[u8], has_tokens: bool) -> String {
    if body.is_empty() {
        return "(empty body)".into();
    }
    if !has_tokens {
        return quote_remote(&String::from_utf8_lossy(body), DEBUG_BODY_CHARS);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut json) => {
            redact_json(&mut json);
            quote_remote(&json.to_string(), DEBUG_BODY_CHARS)
        }
        Err(_) => format!(
            "({} bytes, not JSON; not shown because it may contain a token)",
            body.len()
        ),
    }
}

const TOKEN_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "client_secret",
];

fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if TOKEN_FIELDS.contains(&key.as_str()) {
                    let len = v.as_str().map_or_else(|| v.to_string().len(), str::len);
                    *v = serde_json::Value::String(format!("<redacted: {len} characters>"));
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 20:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 20:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 19:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        for attempt in 1..40 {
            let full = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            let d = backoff(attempt);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn token_fields_are_redacted_in_debug_bodies() {
        let body = br#"{"access_token":"SECRET-TOKEN","nested":{"refresh_token":"R"},"scope":"repository"}"#;
        let shown = shown_body(body, true);
        assert!(
            !shown.contains("SECRET-TOKEN")
                && shown.contains("<redacted: 12 characters>")
                && shown.contains("repository"),
            "{shown}"
        );
        assert!(shown_body(b"access_token=SECRET", true).starts_with("(19 bytes, not JSON"));
        assert_eq!(shown_body(b"Rate limit", false), "Rate limit");
    }
}
