//! A raw RESP2/RESP3 connection that returns each frame's bytes as they
//! arrived (replies and push frames alike), for tests that compare wire
//! bytes exactly.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The length of the first whole frame in `buf` from `at`, `None` if
/// incomplete.
///
/// # Errors
/// Bytes that are not RESP.
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

/// One connection; every frame is returned as its bytes.
pub struct FrameConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl FrameConn {
    /// Connects (bounded by 5 s).
    ///
    /// # Errors
    /// No connection.
    pub async fn connect(addr: SocketAddr) -> Result<FrameConn> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect {addr}: timeout"))??;
        stream.set_nodelay(true)?;
        Ok(FrameConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends one command.
    ///
    /// # Errors
    /// The write fails.
    pub async fn send(&mut self, args: &[Vec<u8>]) -> Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.send_raw(&out).await
    }

    /// Sends bytes as they are (a pipeline of encoded commands).
    ///
    /// # Errors
    /// The write fails.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// The next frame's bytes, waiting at most `timeout`.
    ///
    /// # Errors
    /// Nothing whole within `timeout`, a closed connection, bytes that are
    /// not RESP.
    pub async fn frame(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(len) = frame_len(&self.buf, 0)? {
                let frame = self.buf[..len].to_vec();
                self.buf.drain(..len);
                return Ok(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .with_context(|| {
                    format!(
                        "no frame within {timeout:?} (have {:?})",
                        String::from_utf8_lossy(&self.buf)
                    )
                })??;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command and returns its reply (bounded by 10 s).
    ///
    /// # Errors
    /// As [`FrameConn::send`] and [`FrameConn::frame`].
    pub async fn call(&mut self, args: &[Vec<u8>]) -> Result<Vec<u8>> {
        self.send(args).await?;
        self.frame(Duration::from_secs(10)).await
    }
}
