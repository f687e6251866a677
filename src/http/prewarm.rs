//! The API host's connection, opened while the token request is in flight.
//!
//! A run that gets a token from one host and proves it on another pays, strictly in sequence,
//! two connection setups and two requests. The second setup does not depend on the token,
//! only the request on it does, so [`super::Http::prewarm`] starts it (name lookup, TCP, the
//! TLS handshake and nothing else: no request, so nothing costs the user's rate limit) as
//! soon as the run starts, and the first request to that origin is sent on it the moment
//! the token arrives. When validation is off, or the token request fails, the connection is
//! dropped unused.
//!
//! reqwest cannot open a pooled connection without a request (its connector's target type
//! is sealed), so this one connection is made with the same pieces reqwest uses underneath:
//! the run's rustls configuration (same roots, same ring provider), hyper's HTTP/1.1 client,
//! `localhost` pinned to loopback as in [`super::client`]. It is used only where reqwest's
//! own connection would be direct: never through a proxy (then the request simply goes
//! through reqwest). Retries, the deadline, the body cap and DEBUG logging are the caller's,
//! exactly as for any other request; a failure before the request is written falls back to
//! reqwest, so prewarming can only save time, never change an outcome.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use url::Url;

use super::{MAX_BODY_BYTES, ReadError, Response};

/// `(host, port)` of a URL, lower case.
pub(super) fn origin(url: &Url) -> Option<(String, u16)> {
    Some((
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

/// A connection being opened to `origin`.
pub(super) struct Warm {
    pub(super) origin: (String, u16),
    task: Option<Connecting>,
}

type Connecting = JoinHandle<Result<SendRequest<Full<Bytes>>, String>>;

impl Drop for Warm {
    fn drop(&mut self) {
        // Unused: close it without a request.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts opening `url`'s origin with `tls`.
pub(super) fn start(url: &Url, tls: Arc<rustls::ClientConfig>) -> Option<Warm> {
    let origin = origin(url)?;
    let (host, port) = origin.clone();
    let task = tokio::spawn(async move { connect(&host, port, tls).await });
    Some(Warm {
        origin,
        task: Some(task),
    })
}

async fn connect(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let addrs: Vec<SocketAddr> = if host == "localhost" {
        vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ]
    } else if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| e.to_string())?
            .collect()
    };
    let mut last = String::from("no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Why the warm connection was not used.
pub(super) enum Unused {
    /// It failed before the request was written: send it the usual way.
    NotSent,
    /// The exchange failed after the request may have left.
    Failed(ReadError),
}

/// Sends `request` on the warm connection and reads the answer within the body cap.
pub(super) async fn send(
    mut warm: Warm,
    request: &reqwest::Request,
    user_agent: &str,
) -> Result<Response, Unused> {
    let Some(task) = warm.task.take() else {
        return Err(Unused::NotSent);
    };
    let mut sender = match task.await {
        Ok(Ok(sender)) => sender,
        _ => return Err(Unused::NotSent),
    };
    if sender.ready().await.is_err() {
        return Err(Unused::NotSent);
    }
    let url = request.url();
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut builder = hyper::Request::builder()
        .method(request.method().clone())
        .uri(target);
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    builder = builder
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, user_agent);
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .map(Bytes::copy_from_slice)
        .unwrap_or_default();
    let Ok(hyper_request) = builder.body(Full::new(body)) else {
        return Err(Unused::NotSent);
    };
    let response = sender
        .send_request(hyper_request)
        .await
        .map_err(|e| Unused::Failed(ReadError::Other(e.to_string())))?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut incoming = response.into_body();
    let mut body = Vec::new();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| Unused::Failed(ReadError::Other(e.to_string())))?;
        if let Some(chunk) = frame.data_ref() {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Unused::Failed(ReadError::TooLarge(
                    (body.len() + chunk.len()) as u64,
                )));
            }
            body.extend_from_slice(chunk);
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}
