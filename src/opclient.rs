//! A minimal blocking HTTP/1.1 client for the operator routes (`/status`,
//! `/admin/*`), shared by `dkv-cli` and `dkv-server --join`: one request per
//! connection, bounded response size, no dependencies beyond std.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest HTTP response this client buffers.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a request failed, in words meant for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

impl From<std::io::Error> for OpError {
    fn from(err: std::io::Error) -> OpError {
        OpError(err.to_string())
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, OpError> {
    Err(OpError(message.into()))
}

/// Connects to the first address `target` resolves to that accepts within `timeout`.
/// The error does not repeat `target`: callers name it.
pub fn connect(target: &str, timeout: Duration) -> Result<TcpStream, OpError> {
    let addrs: Vec<SocketAddr> = match target.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(err) => return fail(format!("bad address: {err}")),
    };
    let mut last_error = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                // One small request; Nagle would only add latency.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => last_error = Some(err),
        }
    }
    match last_error {
        Some(err) => fail(format!("cannot connect: {err}")),
        None => fail("resolves to no address"),
    }
}

/// A minimal HTTP/1.1 request without a body: `Connection: close`, the response
/// body by Content-Length, chunked encoding, or the end of the stream.
pub fn http_request(
    method: &str,
    host: &str,
    path: &str,
    extra_headers: &str,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), OpError> {
    let stream = connect(host, timeout)?;
    http_exchange(stream, method, host, path, extra_headers)
}

/// One request like [`http_request`]'s over an open `stream` (plain TCP, or
/// TLS over it), which is read to its end.
///
/// # Errors
/// The request cannot be written, or the response is malformed or too large.
pub fn http_exchange<S: Read + Write>(
    mut stream: S,
    method: &str,
    host: &str,
    path: &str,
    extra_headers: &str,
) -> Result<(u16, Vec<u8>), OpError> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\
         User-Agent: dkv-cli\r\n{extra_headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_to_end(&mut response)
        .map_err(|err| OpError(format!("reading the response: {err}")))?;
    if response.len() > MAX_RESPONSE_BYTES {
        return fail("response too large");
    }
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return fail("malformed HTTP response (no end of headers)");
    };
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = &response[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let Some(code) = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
    else {
        return fail(format!(
            "{method} {path}: malformed status line {status_line:?}"
        ));
    };
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    if chunked {
        return Ok((code, decode_chunked(body)?));
    }
    match content_length {
        Some(len) if body.len() < len => fail("truncated HTTP response"),
        Some(len) => Ok((code, body[..len].to_vec())),
        None => Ok((code, body.to_vec())),
    }
}

pub fn decode_chunked(mut body: &[u8]) -> Result<Vec<u8>, OpError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return fail("truncated chunked HTTP body");
        };
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return fail(format!("bad chunk size {size_text:?}"));
        };
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return fail("truncated chunked HTTP body");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// The host:port of an endpoint given as `host:port` or `http://host:port/`.
pub fn host_of(endpoint: &str) -> &str {
    endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/')
}
