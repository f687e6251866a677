//! HTTP/1.1 over TLS for the fakes: a [`Server`] on 127.0.0.1:0 (or a listener the fake bound
//! itself) running on its own thread and current-thread runtime (so a test can block on the
//! binary while it answers), the accept loop, one task per connection, request parsing
//! (Content-Length and chunked bodies) and the record of handler panics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::reply::{self, Reply};

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
    pub connected_at: Instant,
    /// When the request had been read whole.
    pub received_at: Instant,
}

impl Request {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form fields of the body, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Every value of form field `name`.
    pub fn fields(&self, name: &str) -> Vec<String> {
        self.form()
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    /// The one value of form field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields(name).into_iter().next()
    }
}

/// A fake's answer to each request. It runs on the server's thread; a panic in it closes the
/// connection and is reported by [`Server::stop`].
type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// What the server thread records for the test.
#[derive(Default)]
struct Record {
    /// TLS connections accepted so far.
    connections: usize,
    /// Messages of connection tasks that panicked.
    panics: Vec<String>,
}

/// The record, even after a task panicked holding it.
fn lock(record: &Mutex<Record>) -> MutexGuard<'_, Record> {
    record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running HTTPS server on 127.0.0.1. Dropping it stops it; [`Server::stop`] stops it and
/// says what went wrong on its side.
pub struct Server {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts serving with `tls` (the CA's PEM and the server configuration, from
    /// [`super::tls::certificates`]); the CA is written to `fake-{name}-ca.pem`. Each reply
    /// carries a `Server: {server}` header when `server` is given.
    pub fn start(
        name: &str,
        tls: (String, rustls::ServerConfig),
        server: Option<&'static str>,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        Server::start_on(listener, name, tls, server, handler)
    }

    /// [`Server::start`] on a listener the caller bound (a fake that must answer at a fixed
    /// loopback address, such as one that `/etc/hosts` names github.com in a test's mount
    /// namespace).
    pub fn start_on(
        listener: std::net::TcpListener,
        name: &str,
        tls: (String, rustls::ServerConfig),
        server: Option<&'static str>,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let (ca_pem, config) = tls;
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join(format!("fake-{name}-ca.pem"));
        std::fs::write(&ca_file, ca_pem).expect("write CA");
        let record = Arc::new(Mutex::new(Record::default()));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread_record = record.clone();
        let handler: Handler = Arc::new(handler);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(
                listener,
                TlsAcceptor::from(Arc::new(config)),
                Connections {
                    record: thread_record,
                    handler,
                    server,
                },
                stopped,
            ));
        });
        Server {
            addr,
            record,
            ca_file,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://IP:PORT` (`https://127.0.0.1:PORT` unless bound elsewhere).
    pub fn base(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM file of the CA that signed the server's certificate (for CA_BUNDLE).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// How many TLS connections it accepted.
    pub fn connections(&self) -> usize {
        lock(&self.record).connections
    }

    /// Stops the server and returns what went wrong on its side: handler and server-thread
    /// panics, for the fake's drop check ([`super::check`]).
    pub fn stop(&mut self) -> Vec<String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self
            .thread
            .take()
            .and_then(|thread| thread.join().err())
            .map(panic_message);
        let mut problems: Vec<String> = lock(&self.record)
            .panics
            .drain(..)
            .map(|message| format!("a handler panicked: {message}"))
            .collect();
        problems.extend(thread.map(|message| format!("the server thread panicked: {message}")));
        problems
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What every connection task shares.
#[derive(Clone)]
struct Connections {
    record: Arc<Mutex<Record>>,
    handler: Handler,
    server: Option<&'static str>,
}

/// Accepts connections until `stopped` fires. A connection task that panics is recorded in
/// the record's panics, for the fake's drop check: tokio would otherwise swallow the panic and
/// the client would only see a closed connection, which a retrying client survives.
async fn serve(
    listener: std::net::TcpListener,
    tls: TlsAcceptor,
    shared: Connections,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                record_panic(&shared.record, done);
            }
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                // Real servers answer without Nagle delays; without this a TLS flight
                // written in two parts can stall 40 ms on loopback's delayed ACK.
                let _ = socket.set_nodelay(true);
                let tls = tls.clone();
                let shared = shared.clone();
                connections.spawn(async move {
                    if let Ok(stream) = tls.accept(socket).await {
                        let id = {
                            let mut record = lock(&shared.record);
                            record.connections += 1;
                            record.connections
                        };
                        connection(stream, shared, id, Instant::now()).await;
                    }
                });
            }
        }
    }
    // Connections still open (a Hang reply, a client that keeps its connection) are
    // cancelled when the set drops; those that already ended are checked.
    while let Some(done) = connections.try_join_next() {
        record_panic(&shared.record, done);
    }
}

fn record_panic(record: &Mutex<Record>, done: Result<(), tokio::task::JoinError>) {
    match done {
        Err(error) if error.is_panic() => {
            let message = panic_message(error.into_panic());
            lock(record).panics.push(message);
        }
        _ => {}
    }
}

/// The text of a panic payload.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    shared: Connections,
    id: usize,
    connected_at: Instant,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(mut request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        request.connection = id;
        request.connected_at = connected_at;
        let reply = (shared.handler)(&request);
        if !reply::send(&mut stream, &reply, shared.server).await {
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
            buffer.drain(..head_len);
            let body = if chunked {
                // git sends large pushes chunked: decode chunk by chunk.
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
                        break body;
                    }
                }
            } else {
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buffer.len() < length {
                    if !fill(stream, buffer).await {
                        return None;
                    }
                }
                buffer.drain(..length).collect()
            };
            return Some(Request {
                method,
                path,
                headers,
                body,
                connection: 0,
                connected_at: Instant::now(),
                received_at: Instant::now(),
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
