//! A throwaway real `redis-server` on a free loopback port (no persistence,
//! DEBUG enabled), for the tests that compare dkv with Redis. Killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::resp::RawConn;

/// A running `redis-server`; killed when dropped.
pub struct RedisServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one and returns it with a connection that has answered PING
/// (within 10 s).
///
/// # Errors
/// It cannot be spawned or does not answer.
pub async fn start_redis() -> Result<(RedisServer, RawConn)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn redis-server")?;
    let server = RedisServer {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut conn) = RawConn::connect(server.addr).await {
            if conn.command(&[b"PING"]).await.is_ok() {
                return Ok((server, conn));
            }
        }
        if Instant::now() > deadline {
            bail!("redis-server did not answer PING on {}", server.addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
