//! A raw RESP2 connection over a tokio `TcpStream`, for input no client library
//! would send (malformed frames, huge lengths, half requests). Every read is bounded
//! by a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text` (the whole line, e.g. `ERR unknown command ...`).
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$n` bulk string; `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for `*-1`.
    Array(Option<Vec<Reply>>),
}

/// A raw client connection.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// How a connection ended when we expected it to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Orderly EOF.
    Eof,
    /// Reset by the peer (e.g. closed with unread input).
    Reset,
}

impl RawConn {
    /// Connect to `addr` (bounded by 5 s).
    ///
    /// # Errors
    /// Connection refused or timeout.
    pub async fn connect(addr: SocketAddr) -> Result<RawConn> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect {addr}: timeout"))?
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true).context("set_nodelay")?;
        Ok(RawConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Write raw bytes.
    ///
    /// # Errors
    /// The socket write failed (e.g. the server closed the connection).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .await
            .context("write to server")?;
        self.stream.flush().await.context("flush")
    }

    /// Send one command as a RESP array of bulk strings and read its reply (5 s bound).
    ///
    /// # Errors
    /// Write failure, timeout, connection closed, or an unparsable reply.
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.send(&encode(args)).await?;
        self.read_reply(Duration::from_secs(5)).await
    }

    /// Read exactly one reply.
    ///
    /// # Errors
    /// Timeout, EOF/reset before a whole reply arrived, or an unparsable reply.
    pub async fn read_reply(&mut self, timeout: Duration) -> Result<Reply> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((reply, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .with_context(|| {
                    format!(
                        "no complete reply within {timeout:?} (have {:?})",
                        String::from_utf8_lossy(&self.buf)
                    )
                })?
                .with_context(|| {
                    format!(
                        "read failed before a complete reply (have {:?})",
                        String::from_utf8_lossy(&self.buf)
                    )
                })?;
            if n == 0 {
                bail!(
                    "server closed the connection before a complete reply (have {:?})",
                    String::from_utf8_lossy(&self.buf)
                );
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Wait until the server closes the connection.
    ///
    /// # Errors
    /// Timeout, or the server sent more data instead of closing.
    pub async fn expect_closed(&mut self, timeout: Duration) -> Result<Closed> {
        if !self.buf.is_empty() {
            bail!(
                "expected the connection to close, but unread data is buffered: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(timeout, self.stream.read(&mut chunk))
            .await
            .with_context(|| format!("connection still open after {timeout:?}"))?;
        match read {
            Ok(0) => Ok(Closed::Eof),
            Ok(n) => bail!(
                "expected the connection to close, got more data: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(Closed::Reset),
            Err(e) => Err(e).context("read while waiting for close"),
        }
    }

    /// Close our side without reading anything more.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// Encode a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The length of the first whole frame in `buf`, `None` if incomplete.
/// `Err` for bytes that are not RESP. Any RESP2 or RESP3 frame (pushes,
/// maps, attributes), so replies can be compared byte for byte.
///
/// # Errors
/// The bytes at `at` are not RESP.
pub fn frame_len(buf: &[u8], at: usize) -> Result<Option<usize>> {
    let Some(kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(nl) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[at + 1..at + nl];
    let after_line = at + nl + 2;
    let number = || -> Result<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad length {:?}", String::from_utf8_lossy(line)))
    };
    match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => Ok(Some(after_line - at)),
        b'$' | b'!' | b'=' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(after_line - at));
            }
            let end = after_line + n as usize + 2;
            Ok((buf.len() >= end).then_some(end - at))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some(after_line - at));
            }
            let items = if matches!(kind, b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut pos = after_line;
            for _ in 0..items {
                match frame_len(buf, pos)? {
                    Some(len) => pos += len,
                    None => return Ok(None),
                }
            }
            if *kind == b'|' {
                // An attribute precedes the reply it describes.
                return Ok(frame_len(buf, pos)?.map(|len| pos + len - at));
            }
            Ok(Some(pos - at))
        }
        other => bail!("not RESP: first byte {other:#x}"),
    }
}

/// Parse one reply from the front of `buf`: `Ok(None)` if incomplete.
fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>> {
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[1..line_end])
        .with_context(|| format!("reply line is not UTF-8: {:?}", &buf[..line_end]))?;
    let after = line_end + 2;
    let int = || -> Result<i64> {
        line.parse::<i64>()
            .with_context(|| format!("bad integer in reply line {line:?}"))
    };
    match buf.first() {
        Some(b'+') => Ok(Some((Reply::Simple(line.to_string()), after))),
        Some(b'-') => Ok(Some((Reply::Error(line.to_string()), after))),
        Some(b':') => Ok(Some((Reply::Integer(int()?), after))),
        Some(b'$') => {
            let len = int()?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            let len = usize::try_from(len).context("bulk length")?;
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            Ok(Some((
                Reply::Bulk(Some(buf[after..after + len].to_vec())),
                after + len + 2,
            )))
        }
        Some(b'*') => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), after)));
            }
            let mut items = Vec::new();
            let mut used = after;
            for _ in 0..n {
                match parse(&buf[used..])? {
                    Some((item, len)) => {
                        items.push(item);
                        used += len;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), used)))
        }
        Some(other) => bail!(
            "unexpected reply type byte {:?} in {:?}",
            *other as char,
            String::from_utf8_lossy(&buf[..buf.len().min(200)])
        ),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_reply_type() {
        let buf = b"+OK\r\n-ERR x y\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$1\r\nz\r\n";
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((r, used)) = parse(&buf[at..]).unwrap() {
            got.push(r);
            at += used;
        }
        assert_eq!(at, buf.len());
        assert_eq!(
            got,
            vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR x y".into()),
                Reply::Integer(42),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Bulk(None),
                Reply::Array(Some(vec![
                    Reply::Integer(1),
                    Reply::Bulk(Some(b"z".to_vec()))
                ])),
            ]
        );
    }

    #[test]
    fn incomplete_input_is_none() {
        assert_eq!(parse(b"$5\r\nab").unwrap(), None);
        assert_eq!(parse(b"*2\r\n:1\r\n").unwrap(), None);
        assert_eq!(parse(b"+O").unwrap(), None);
    }

    #[test]
    fn encodes_bulk_arrays() {
        assert_eq!(encode(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
