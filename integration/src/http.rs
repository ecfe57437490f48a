//! A minimal HTTP/1.1 GET and POST over a tokio `TcpStream`, enough for `/status`,
//! `/health`, `/metrics` and hand-made peer requests (no new dependencies). Handles `Content-Length`, chunked bodies and
//! bodies delimited by connection close. Every call is bounded by a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted, so a misbehaving server cannot make a test allocate
/// without bound.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The body, decoded from chunked encoding if needed.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` on `addr` with `Connection: close`.
///
/// # Errors
/// Connection refused, timeout, or a response that is not HTTP/1.x.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<HttpResponse> {
    tokio::time::timeout(timeout, get_inner(addr, path))
        .await
        .with_context(|| format!("GET http://{addr}{path}: no response within {timeout:?}"))?
        .with_context(|| format!("GET http://{addr}{path}"))
}

async fn get_inner(addr: SocketAddr, path: &str) -> Result<HttpResponse> {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    exchange(addr, request.into_bytes()).await
}

/// `POST path` on `addr` with `Connection: close`, the given extra headers and a
/// `Content-Length` body.
///
/// # Errors
/// Connection refused, timeout, or a response that is not HTTP/1.x.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    tokio::time::timeout(timeout, exchange(addr, request))
        .await
        .with_context(|| format!("POST http://{addr}{path}: no response within {timeout:?}"))?
        .with_context(|| format!("POST http://{addr}{path}"))
}

/// Sends `request` on a new connection and reads the response.
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    stream.write_all(&request).await.context("write request")?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A server that closes right after a complete response may reset the socket.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => 0,
            Err(e) => return Err(e).context("read response"),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > MAX_RESPONSE_BYTES {
            bail!("response larger than {MAX_RESPONSE_BYTES} bytes");
        }
        // Stop early once a Content-Length body is complete (keep-alive servers).
        if let Some(done) = complete_len(&raw) {
            raw.truncate(done);
            break;
        }
    }
    parse_response(&raw)
}

/// If the buffer holds a full response with a `Content-Length`, its total length.
fn complete_len(raw: &[u8]) -> Option<usize> {
    let head_end = find(raw, b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let len = header(head, "content-length")?.parse::<usize>().ok()?;
    (raw.len() >= head_end + len).then_some(head_end + len)
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse> {
    let head_end = find(raw, b"\r\n\r\n").with_context(|| {
        format!(
            "incomplete response head: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        )
    })?;
    let head = std::str::from_utf8(&raw[..head_end]).context("response head is not UTF-8")?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x status line: {status_line:?}");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let rest = &raw[head_end + 4..];
    let body = if header(head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        decode_chunked(rest)?
    } else if let Some(len) = header(head, "content-length") {
        let len: usize = len
            .parse()
            .with_context(|| format!("bad content-length {len:?}"))?;
        if rest.len() < len {
            bail!("body truncated: {} of {len} bytes", rest.len());
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, body })
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").context("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).context("chunk size not UTF-8")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            bail!("chunk truncated");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_body() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hi");
    }

    #[test]
    fn parses_chunked_body() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn complete_len_waits_for_the_whole_body() {
        assert_eq!(
            complete_len(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"),
            None
        );
        assert_eq!(
            complete_len(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"),
            Some(40)
        );
    }
}
