//! The fake's HTTP/1.1 over TLS: the accept loop, one task per connection, request parsing
//! (Content-Length and chunked bodies) and the record of handler panics.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::{State, bitbucket, lock, reply};

/// What the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    /// GET, POST...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased, in order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Which connection it came on (1 for the first the fake accepted).
    pub connection: usize,
    /// When that connection's TLS handshake completed.
    pub connected_at: std::time::Instant,
    /// When the request had been read whole.
    pub received_at: std::time::Instant,
}

impl Request {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Accepts connections until `stopped` fires. A connection task that panics is recorded in
/// `state.panics`, for the fake's drop check: tokio would otherwise swallow the panic and the
/// client would only see a closed connection, which a retrying client survives.
pub(super) async fn serve(
    listener: std::net::TcpListener,
    tls: TlsAcceptor,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                record_panic(&state, done);
            }
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                // Bitbucket's servers answer without Nagle delays; without this a TLS flight
                // written in two parts can stall 40 ms on loopback's delayed ACK.
                let _ = socket.set_nodelay(true);
                let tls = tls.clone();
                let state = state.clone();
                connections.spawn(async move {
                    if let Ok(stream) = tls.accept(socket).await {
                        let id = {
                            let mut state = lock(&state);
                            state.connections += 1;
                            state.connections
                        };
                        connection(stream, state, id, std::time::Instant::now()).await;
                    }
                });
            }
        }
    }
    // Connections still open (a Hang reply, a client that keeps its connection) are
    // cancelled when the set drops; those that already ended are checked.
    while let Some(done) = connections.try_join_next() {
        record_panic(&state, done);
    }
}

fn record_panic(state: &Mutex<State>, done: Result<(), tokio::task::JoinError>) {
    match done {
        Err(error) if error.is_panic() => {
            let message = panic_message(error.into_panic());
            lock(state).panics.push(message);
        }
        _ => {}
    }
}

/// The text of a panic payload.
pub(super) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    state: Arc<Mutex<State>>,
    id: usize,
    connected_at: std::time::Instant,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(mut request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        request.connection = id;
        request.connected_at = connected_at;
        let reply = bitbucket::handle(&state, &request);
        if !reply::send(&mut stream, &reply).await {
            return;
        }
        if request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> Option<Request> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(buffer) {
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let method = parsed.method.unwrap_or("").to_owned();
            let path = parsed.path.unwrap_or("").to_owned();
            let chunked = headers
                .iter()
                .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
            if chunked {
                // git sends large pushes chunked: decode chunk by chunk.
                buffer.drain(..head_len);
                let mut body = Vec::new();
                loop {
                    let line_end = loop {
                        if let Some(i) = buffer.windows(2).position(|w| w == b"\r\n") {
                            break i;
                        }
                        if !fill(stream, buffer).await {
                            return None;
                        }
                    };
                    let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                            .ok()?;
                    while buffer.len() < line_end + 2 + size + 2 {
                        if !fill(stream, buffer).await {
                            return None;
                        }
                    }
                    body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
                    buffer.drain(..line_end + 2 + size + 2);
                    if size == 0 {
                        return Some(Request {
                            method,
                            path,
                            headers,
                            body,
                            connection: 0,
                            connected_at: std::time::Instant::now(),
                            received_at: std::time::Instant::now(),
                        });
                    }
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buffer.len() < head_len + length {
                if !fill(stream, buffer).await {
                    return None;
                }
            }
            let body = buffer[head_len..head_len + length].to_vec();
            buffer.drain(..head_len + length);
            return Some(Request {
                method,
                path,
                headers,
                body,
                connection: 0,
                connected_at: std::time::Instant::now(),
                received_at: std::time::Instant::now(),
            });
        }
        if !fill(stream, buffer).await {
            return None;
        }
    }
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
