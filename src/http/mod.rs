//! Sends one logical request: retries, the run's deadline, the body cap and DEBUG logging.
//!
//! Every request of a run goes through [`Http::send`], so the policies hold everywhere and
//! for every provider: transient failures (connect and timeout errors, 408, 429, 500, 502,
//! 503, 504) are retried RETRIES times with exponential backoff and jitter, honouring
//! `Retry-After` (seconds or an HTTP date) when present; nothing outlives TIMEOUT; a body
//! over 1 MiB is refused without being buffered whole; and DEBUG shows requests and
//! responses with every credential redacted. The retry loop is written here rather than
//! taken from a retry crate because its decisions depend on the run-wide deadline and on the
//! response's `Retry-After`, which is most of the logic.
//!
//! Retrying a POST that reached the server can mint a second token. That is deliberate and
//! harmless for the client-credentials grant (the first token is never handed out and
//! expires on its own; RFC 6749 §4.4 tokens are independent), and it is what makes a reset
//! connection survivable. A request marked [`Call::once_sent`] (one whose repetition would
//! have an effect, such as a revocation) is not retried after its bytes may have left.

mod classify;
pub mod client;
mod debug;
mod prewarm;

use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use crate::error::Error;
use crate::report::{Reporter, quote_remote};

pub use client::Settings;

/// Response bodies larger than this are refused: no token or error body comes close.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How a request authenticates. Secrets are exposed only when the header is built.
pub enum Auth<'a> {
    /// No Authorization header (discovery, or credentials carried in the form).
    None,
    /// HTTP Basic. `user` and `password` are sent as given: a provider that wants RFC 6749
    /// §2.3.1's form-encoding encodes them first.
    Basic {
        /// The user part (a client ID).
        user: &'a str,
        /// The password part (a client secret).
        password: &'a SecretString,
    },
    /// `Authorization: Bearer` with a token.
    Bearer(&'a SecretString),
}

/// One field of a form body; secret values are exposed only when the body is encoded and
/// are shown as `<redacted>` in DEBUG.
pub struct Field {
    /// The parameter name.
    pub name: &'static str,
    /// Its value.
    pub value: SecretString,
    /// Whether DEBUG may show the value.
    pub public: bool,
}

impl Field {
    /// A field DEBUG may show (`grant_type`, `scope`).
    pub fn public(name: &'static str, value: impl Into<String>) -> Field {
        Field {
            name,
            value: SecretString::from(value.into()),
            public: true,
        }
    }

    /// A field DEBUG never shows (`client_secret`, `client_assertion`, `token`).
    pub fn secret(name: &'static str, value: &SecretString) -> Field {
        Field {
            name,
            value: value.clone(),
            public: false,
        }
    }
}

/// A request body.
pub enum Body<'a> {
    /// None.
    Empty,
    /// `application/x-www-form-urlencoded`.
    Form(&'a [Field]),
    /// `application/json`, never secret.
    Json(&'a serde_json::Value),
}

/// One logical request, rebuilt for every attempt.
pub struct Call<'a> {
    /// What the log calls it ("token request", "validation call").
    pub name: &'static str,
    /// GET, POST, DELETE.
    pub method: Method,
    /// Where it goes.
    pub url: &'a Url,
    /// The variable that sets this URL, for messages that say what to change.
    pub variable: &'static str,
    /// How it authenticates.
    pub auth: Auth<'a>,
    /// The body.
    pub body: Body<'a>,
    /// Extra request headers (`Accept`, API versions); never secret.
    pub headers: &'a [(&'static str, &'a str)],
    /// Whether a successful response body carries tokens (and is shown redacted in DEBUG).
    pub body_has_tokens: bool,
    /// Not retried once it may have reached the server.
    pub once_sent: bool,
}

impl<'a> Call<'a> {
    /// A GET of `url` with `auth`, its response free of tokens.
    pub fn get(name: &'static str, url: &'a Url, variable: &'static str, auth: Auth<'a>) -> Self {
        Call {
            name,
            method: Method::GET,
            url,
            variable,
            auth,
            body: Body::Empty,
            headers: &[],
            body_has_tokens: false,
            once_sent: false,
        }
    }
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

    /// The body as text for a message: lossy UTF-8, trimmed, quoted, cut to `max`.
    pub fn quoted_body(&self, max: usize) -> String {
        quote_remote(String::from_utf8_lossy(&self.body).trim(), max)
    }

    /// [`Response::quoted_body`], or `(empty body)` when there is none.
    pub fn described_body(&self, max: usize) -> String {
        let body = self.quoted_body(max);
        if body.is_empty() {
            "(empty body)".to_owned()
        } else {
            body
        }
    }
}

/// The HTTP side of a run: the client, the deadline and the retry budget.
pub struct Http {
    client: reqwest::Client,
    deadline: Instant,
    timeout: Duration,
    retries: u32,
    settings: Settings,
    tls: std::sync::Arc<rustls::ClientConfig>,
    warm: std::cell::RefCell<Option<prewarm::Warm>>,
}

/// Why one attempt failed.
enum Attempt {
    /// Worth another try; `wait` is the server's `Retry-After`, if it sent one.
    Transient {
        reason: String,
        wait: Option<Duration>,
        /// Whether the request may have reached the server.
        sent: bool,
    },
    /// Retrying cannot help.
    Fatal(Error),
}

impl Http {
    /// The HTTP side of a run starting now, built from `settings`.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let (client, tls) = client::build(settings)?;
        Ok(Http {
            client,
            deadline: Instant::now() + settings.timeout,
            timeout: settings.timeout,
            retries: settings.retries,
            settings: settings.clone(),
            tls,
            warm: std::cell::RefCell::new(None),
        })
    }

    /// Starts opening a connection to `url`'s origin now (name lookup, TCP, TLS, no request),
    /// for a request that will follow (see [`prewarm`]); only for direct https, and at most
    /// one such connection per run.
    pub fn prewarm(&self, url: &Url) {
        if url.scheme() != "https"
            || !client::is_direct(&self.settings, url)
            || self.warm.borrow().is_some()
        {
            return;
        }
        *self.warm.borrow_mut() = prewarm::start(url, self.tls.clone());
    }

    /// Drops the warm connection unused (validation is off, or the run failed).
    pub fn drop_prewarmed(&self) {
        self.warm.borrow_mut().take();
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
            let (reason, wait) = match self.attempt(call, log).await {
                Ok(response) => return Ok(response),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient { reason, sent, .. }) if sent && call.once_sent => {
                    return Err(Error::provider(format!(
                        "The {} to {} failed ({reason}) after it may have reached the server; it is not repeated, since repeating it could act twice.",
                        call.name,
                        host(call.url)
                    )));
                }
                Err(Attempt::Transient { reason, wait, .. }) => (reason, wait),
            };
            if attempt == attempts {
                return Err(Error::provider(format!(
                    "The {} to {} failed {attempts} time(s); the last failure: {reason}. The provider may be down or rate-limiting this client: try again later, or raise RETRIES and TIMEOUT.",
                    call.name,
                    host(call.url)
                )));
            }
            let delay = wait.unwrap_or_else(|| backoff(attempt, fastrand::f64()));
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
        unreachable!("the last attempt returns")
    }

    async fn attempt(&self, call: &Call<'_>, log: &mut Reporter) -> Result<Response, Attempt> {
        let request = self
            .build(call)
            .map_err(|e| Attempt::Fatal(Error::Other(e)))?;
        debug::log_request(&request, call, log);
        let left = self.deadline.saturating_duration_since(Instant::now());
        // A stalled attempt is a transient failure, so each attempt gets a share of TIMEOUT
        // and a hang still leaves time to retry; the last share ends at the deadline.
        let share = self.attempt_timeout().min(left);
        let warm = {
            let mut slot = self.warm.borrow_mut();
            match slot.as_ref() {
                Some(w) if Some(&w.origin) == prewarm::origin(call.url).as_ref() => slot.take(),
                _ => None,
            }
        };
        let exchange = async {
            if let Some(warm) = warm {
                match prewarm::send(warm, &request, client::USER_AGENT).await {
                    Ok(response) => return Ok(response),
                    Err(prewarm::Unused::Failed(e)) => return Err(e),
                    Err(prewarm::Unused::NotSent) => {}
                }
            }
            let response = self.client.execute(request).await?;
            read(response).await
        };
        let response = match tokio::time::timeout(share, exchange).await {
            Err(_) if share < left => {
                return Err(Attempt::Transient {
                    reason: format!("no complete answer within {}", seconds(share)),
                    wait: None,
                    sent: true,
                });
            }
            Err(_) => {
                return Err(Attempt::Fatal(Error::provider(format!(
                    "No complete answer from {} within TIMEOUT ({} s): check that the host is reachable from this runner (proxy, firewall, DNS), or raise TIMEOUT.",
                    host(call.url),
                    self.timeout.as_secs()
                ))));
            }
            Ok(Err(ReadError::TooLarge(size))) => {
                return Err(Attempt::Fatal(Error::provider(format!(
                    "The response from {} is larger than {} bytes ({size}); refused. Check that {} points at the right service.",
                    host(call.url),
                    MAX_BODY_BYTES,
                    call.variable
                ))));
            }
            Ok(Err(ReadError::Http(e))) => return Err(classify::classify(&e, call)),
            Ok(Err(ReadError::Other(reason))) => {
                return Err(Attempt::Transient {
                    reason: format!("connection failed: {}", quote_remote(&reason, 300)),
                    wait: None,
                    sent: true,
                });
            }
            Ok(Ok(response)) => response,
        };
        if call.body_has_tokens && response.status.is_success() {
            // Before any line of any level: DEBUG's view of this very response is next.
            debug::mask_tokens(&response.body, log);
        }
        debug::log_response(&response, call.body_has_tokens, log);
        if is_transient(response.status) {
            let wait = response
                .header("retry-after")
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let body = response.quoted_body(200);
            let reason = if body.is_empty() {
                format!("HTTP {}", response.status)
            } else {
                format!("HTTP {}: {body}", response.status)
            };
            return Err(Attempt::Transient {
                reason,
                wait,
                sent: true,
            });
        }
        if response.status.is_redirection() {
            let location = response
                .header("location")
                .map(|l| quote_remote(l, 300))
                .unwrap_or_else(|| "(no Location header)".into());
            return Err(Attempt::Fatal(Error::provider(format!(
                "The {} to {} was redirected (HTTP {}) to {location}; redirects are never followed, so the credentials are not sent elsewhere. Set {} to the final URL.",
                call.name, call.url, response.status, call.variable
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
        let mut request = self.client.request(call.method.clone(), call.url.clone());
        // One Accept header: the call's own (GitHub's media type) or JSON.
        if !call.headers.iter().any(|(name, _)| *name == "accept") {
            request = request.header(header::ACCEPT, "application/json");
        }
        for (name, value) in call.headers {
            request = request.header(HeaderName::from_static(name), HeaderValue::from_str(value)?);
        }
        request = match &call.auth {
            Auth::None => request,
            Auth::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose_secret()))
            }
            Auth::Bearer(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))?;
                value.set_sensitive(true);
                request.header(header::AUTHORIZATION, value)
            }
        };
        request = match call.body {
            Body::Empty => request,
            Body::Form(fields) => request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(encode_form(fields)),
            Body::Json(json) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(json.to_string()),
        };
        Ok(request.build()?)
    }
}

/// The form body, every value form-urlencoded (the one place form secrets are exposed).
fn encode_form(fields: &[Field]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for field in fields {
        form.append_pair(field.name, field.value.expose_secret());
    }
    form.finish()
}

enum ReadError {
    TooLarge(u64),
    Http(reqwest::Error),
    /// A failure on the warm connection, after the request may have left.
    Other(String),
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

/// 408 (the server gave up waiting for the request) is as transient as a 503.
fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Exponential backoff with "equal jitter": half fixed, half random (`random` in 0..1), so a
/// retry after a 429 never comes back immediately, and many pipelines do not retry in step.
fn backoff(attempt: u32, random: f64) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(MAX_BACKOFF);
    let half = full / 2;
    half + half.mul_f64(random)
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

/// Whether `a` and `b` are one origin (host and port), so one kept-alive connection serves
/// both and [`Http::prewarm`] has nothing to open early.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    prewarm::origin(a) == prewarm::origin(b)
}

/// `host` or `host:port`, for messages.
pub fn host(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("?")),
        None => url.host_str().unwrap_or("?").to_owned(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
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
    fn backoff_doubles_from_half_a_second_to_eight_with_equal_jitter() {
        let ms = |attempt, random| backoff(attempt, random).as_millis();
        // Fixed half, random half: 0.25–0.5 s, then 0.5–1, 1–2, 2–4, 4–8, capped at 4–8 s.
        assert_eq!([ms(1, 0.0), ms(1, 1.0)], [250, 500]);
        assert_eq!([ms(2, 0.0), ms(2, 1.0)], [500, 1000]);
        assert_eq!([ms(3, 0.5), ms(4, 0.5)], [1500, 3000]);
        assert_eq!([ms(5, 0.0), ms(5, 1.0)], [4000, 8000]);
        assert_eq!([ms(30, 0.0), ms(30, 1.0)], [4000, 8000]);
    }

    #[test]
    fn forms_are_urlencoded() {
        let fields = [
            Field::public("grant_type", "client_credentials"),
            Field::secret("client_secret", &SecretString::from("a+b/c=d%e &x")),
        ];
        assert_eq!(
            encode_form(&fields),
            "grant_type=client_credentials&client_secret=a%2Bb%2Fc%3Dd%25e+%26x"
        );
    }
}
