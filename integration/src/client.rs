//! `redis` crate clients for tests: connection settings that fit Raft latencies, and a
//! client that retries (bounded in time) across elections, reconnecting as needed.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, RedisError};

/// A client request waits this long for a reply. The crate's default (500 ms) is shorter
/// than an election plus the server's bounded wait for a leader.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Open a multiplexed connection to `addr` (connect bounded by 5 s).
///
/// # Errors
/// The node does not accept the connection.
pub async fn connect(addr: SocketAddr) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/"))
        .with_context(|| format!("redis client for {addr}"))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// Errors after which the command certainly was not applied, or the connection is
/// gone: no leader (`CLUSTERDOWN`), `TRYAGAIN`, `LOADING`, I/O, timeouts.
pub fn is_retryable(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return true;
    }
    matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN" | "LOADING"))
}

fn needs_reconnect(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// A client bound to one node that reconnects after connection errors and retries
/// commands until a deadline.
pub struct RetryClient {
    addr: SocketAddr,
    conn: Option<MultiplexedConnection>,
    /// Attempts that failed and were retried, over the client's life.
    pub retries: u64,
}

impl RetryClient {
    /// A client for the node at `addr`; connects lazily.
    pub fn new(addr: SocketAddr) -> RetryClient {
        RetryClient {
            addr,
            conn: None,
            retries: 0,
        }
    }

    /// The node this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Run `cmd` once.
    ///
    /// # Errors
    /// Connection failure or the server's error reply.
    pub async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, RedisError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let client = redis::Client::open(format!("redis://{}/", self.addr))?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                let c = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                self.conn.insert(c)
            }
        };
        let result = cmd.query_async(conn).await;
        if let Err(e) = &result {
            if needs_reconnect(e) {
                self.conn = None;
            }
        }
        result
    }

    /// Run `cmd` until it succeeds, retrying errors that `retry` accepts, for at most
    /// `budget`. Use `retry = is_retryable` for non-idempotent commands; an idempotent
    /// command (SET k v, GET) may retry any error, including an unknown outcome.
    ///
    /// # Errors
    /// A non-retryable error, or the last error once `budget` is spent.
    pub async fn query_retry<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        budget: Duration,
        retry: impl Fn(&RedisError) -> bool,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + budget;
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.query(cmd).await {
                Ok(v) => return Ok(v),
                Err(e) if retry(&e) && tokio::time::Instant::now() + backoff < deadline => {
                    self.retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => {
                    return Err(anyhow!(e)).with_context(|| {
                        format!(
                            "{} on {} (after {} retries in this client, budget {budget:?})",
                            describe(cmd),
                            self.addr,
                            self.retries
                        )
                    })
                }
            }
        }
    }

    /// `SET key value` until acknowledged with `OK` (SET is idempotent, so every error
    /// is retried) within `budget`.
    ///
    /// # Errors
    /// Not acknowledged within `budget`.
    pub async fn set_acked(&mut self, key: &str, value: &str, budget: Duration) -> Result<()> {
        let reply: String = self
            .query_retry(redis::cmd("SET").arg(key).arg(value), budget, |_| true)
            .await?;
        anyhow::ensure!(reply == "OK", "SET {key}: expected OK, got {reply:?}");
        Ok(())
    }

    /// `GET key`, retrying only [`is_retryable`] errors within `budget`.
    ///
    /// # Errors
    /// A non-retryable error, or none succeeded within `budget`.
    pub async fn get(&mut self, key: &str, budget: Duration) -> Result<Option<String>> {
        self.query_retry(redis::cmd("GET").arg(key), budget, is_retryable)
            .await
    }
}

fn describe(cmd: &Cmd) -> String {
    let args: Vec<String> = cmd
        .args_iter()
        .take(3)
        .map(|a| match a {
            redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Arg::Cursor => "<cursor>".into(),
            _ => "<arg>".into(),
        })
        .collect();
    args.join(" ")
}
