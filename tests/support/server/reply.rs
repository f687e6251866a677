//! A fake's answer ([`Reply`]) and how it is written to the socket, misbehaving as its
//! [`Fault`] says.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How a scripted reply misbehaves at the socket level.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Read the request and never answer.
    Hang,
    /// Read the request and close the connection without answering.
    Close,
    /// Send the head and half the body (Content-Length says all of it), then close.
    ResetMidBody,
    /// Send the head, then the body one byte per interval.
    Trickle(Duration),
    /// A chunked body that never ends, sent as fast as the client reads.
    Endless,
    /// A body of this many bytes with its Content-Length, streamed without being held.
    Huge(u64),
    /// The handler panics after reading the request: proves the fake's drop check.
    Panic,
    /// Answer normally after this long (a slow server, for the connection-overlap tests).
    Delay(Duration),
}

/// A scripted HTTP answer.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers besides Content-Length/Transfer-Encoding.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Send the body chunked, with no Content-Length.
    pub chunked: bool,
    /// Socket-level misbehaviour.
    pub fault: Fault,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.as_bytes().to_vec(),
            ..Reply::default()
        }
    }

    /// A plain-text answer, like Bitbucket's 429.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
            ..Reply::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A reply that never comes.
    pub fn hang() -> Reply {
        Reply {
            fault: Fault::Hang,
            ..Reply::default()
        }
    }
}

/// Writes `reply` to `stream`, misbehaving as its fault says. Returns whether the connection
/// can carry another request.
pub(super) async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &Reply,
    server: Option<&str>,
) -> bool {
    if let Fault::Delay(wait) = reply.fault {
        tokio::time::sleep(wait).await;
    }
    match reply.fault {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            false
        }
        Fault::Close => false,
        Fault::Panic => panic!("Fault::Panic scripted"),
        Fault::ResetMidBody => {
            let bytes = encode(reply, server);
            let cut = bytes.len() - reply.body.len() / 2;
            let _ = stream.write_all(&bytes[..cut]).await;
            let _ = stream.flush().await;
            false
        }
        Fault::Trickle(interval) => {
            let bytes = encode(reply, server);
            let head = bytes.len() - reply.body.len();
            if stream.write_all(&bytes[..head]).await.is_err() {
                return false;
            }
            for byte in &bytes[head..] {
                let _ = stream.flush().await;
                tokio::time::sleep(interval).await;
                if stream.write_all(&[*byte]).await.is_err() {
                    return false;
                }
            }
            let _ = stream.flush().await;
            false
        }
        Fault::Endless => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
            false
        }
        Fault::Huge(size) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let block = vec![b' '; 0x10000];
            let mut sent = 0u64;
            while sent < size {
                let n = block.len().min((size - sent) as usize);
                if stream.write_all(&block[..n]).await.is_err() {
                    return false;
                }
                sent += n as u64;
            }
            let _ = stream.flush().await;
            false
        }
        Fault::None | Fault::Delay(_) => {
            if stream.write_all(&encode(reply, server)).await.is_err() {
                return false;
            }
            let _ = stream.flush().await;
            true
        }
    }
}

fn encode(reply: &Reply, server: Option<&str>) -> Vec<u8> {
    let reason = match reply.status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    if let Some(server) = server {
        head.push_str(&format!("Server: {server}\r\n"));
    }
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut out;
    if reply.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        out = head.into_bytes();
        for chunk in reply.body.chunks(64 * 1024) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
        out = head.into_bytes();
        out.extend_from_slice(&reply.body);
    }
    out
}
