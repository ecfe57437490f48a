//! `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
//! [AUTH password] [AUTH2 username password] [KEYS key [key ...]]`.
//!
//! As Redis does it: the keys are serialized as `DUMP` does, sent to the
//! target (any Redis-protocol server: a Redis, another dkv cluster) as
//! `RESTORE key ttl payload [REPLACE]` after `AUTH` and `SELECT`, and, unless
//! `COPY`, deleted here once the target has them. Replies and errors are
//! Redis's (`NOKEY`, `IOERR ...`, `ERR Target instance replied with error:
//! ...`).
//!
//! What differs on a replicated node:
//! - The keys are read with a linearizable read (as GET), and the delete is a
//!   log entry like any write. Redis blocks the whole server meanwhile, so no
//!   write can come between; here one can, so the delete is a transaction
//!   that `WATCH`es the keys as they were read: a key written in between is
//!   not deleted (the target has its older value), and MIGRATE answers an
//!   error saying so rather than lose that write.
//! - Every call opens its own connection (Redis caches one per target for
//!   10 s); `timeout` bounds connecting and each read and write.
//! - What the target answers is read as one line per command (the replies
//!   of AUTH, SELECT and RESTORE are status or error lines), at most
//!   [`MAX_REPLY_LINE`] bytes: a hostile target cannot make the node buffer
//!   more.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::acl::{Categories, KeyAccess};
use crate::cmd::{CommandSpec, Flags};
use crate::kv::{self, Op, Output, WatchToken};
use crate::server::codec::append_command;
use crate::server::command::{parse_i64, Action, Backend, CommandError, Env, ReadWith, Session};
use crate::server::reply::Reply;

/// Longest reply line read from the target.
const MAX_REPLY_LINE: usize = 64 << 10;

/// A parsed MIGRATE.
#[derive(Debug)]
pub struct Migrate {
    host: String,
    port: u16,
    target_db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    /// `AUTH password` (user None) or `AUTH2 user password`.
    auth: Option<(Option<Bytes>, Bytes)>,
    keys: Vec<Bytes>,
    /// The connection's database (where the keys are).
    db: u8,
}

/// Parses MIGRATE with Redis's checks, in Redis's order.
pub fn migrate(session: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let (mut copy, mut replace, mut auth) = (false, false, None);
    let mut keys = vec![args[3].clone()];
    let mut at = 6;
    while at < args.len() {
        let more = args.len() - 1 - at;
        match args[at].to_ascii_lowercase().as_slice() {
            b"copy" => copy = true,
            b"replace" => replace = true,
            b"auth" if more >= 1 => {
                auth = Some((None, args[at + 1].clone()));
                at += 1;
            }
            b"auth2" if more >= 2 => {
                auth = Some((Some(args[at + 1].clone()), args[at + 2].clone()));
                at += 2;
            }
            b"keys" => {
                if !args[3].is_empty() {
                    return Err(CommandError::err(
                        "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                    ));
                }
                keys = args[at + 1..].to_vec();
                break;
            }
            _ => return Err(CommandError::Syntax),
        }
        at += 1;
    }
    let timeout = parse_i64(&args[5]).ok_or(CommandError::NotInteger)?;
    let target_db = parse_i64(&args[4]).ok_or(CommandError::NotInteger)?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    // Redis reads the port as a number and fails at connect for a bad one.
    let port = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(0);
    Ok(Action::Migrate(Box::new(Migrate {
        host: String::from_utf8_lossy(&args[1]).into_owned(),
        port,
        target_db,
        timeout,
        copy,
        replace,
        auth,
        keys,
        db: session.db,
    })))
}

/// One key as read: its serialized value, its TTL in ms (0: none) and what
/// a `WATCH` of it saw.
struct Dumped {
    key: Bytes,
    payload: Vec<u8>,
    ttl_ms: u64,
    token: WatchToken,
}

/// Carries out a parsed MIGRATE.
pub async fn run<B: Backend>(backend: &B, migrate: Migrate) -> Reply {
    let db = migrate.db;
    let keys = migrate.keys.clone();
    let read: ReadWith<Vec<Dumped>> = Box::new(move |map, ctx| {
        keys.into_iter()
            .filter_map(|key| {
                let entry = map.lookup_read(usize::from(db), &key, ctx.now_ms)?;
                // Redis sends at least 1 ms for a key that still has a TTL.
                let ttl_ms = entry
                    .expires_at_ms()
                    .map_or(0, |at| at.saturating_sub(ctx.now_ms).max(1));
                let payload = kv::dump::dump(&entry.value);
                let token = map.watch_token(db, key.clone(), ctx.now_ms);
                Some(Dumped {
                    key,
                    payload,
                    ttl_ms,
                    token,
                })
            })
            .collect()
    });
    let dumped = match backend.read(read).await {
        Ok(dumped) => dumped,
        Err(e) => return CommandError::from(e).into(),
    };
    if dumped.is_empty() {
        return Reply::Simple("NOKEY");
    }
    // Redis connects without blocking and learns of a refused or timed-out
    // connect when it writes: only an address it cannot use at all is a
    // connect error.
    let address = match tokio::net::lookup_host((migrate.host.as_str(), migrate.port)).await {
        Ok(mut found) => found.next(),
        Err(_) => None,
    };
    let Some(address) = address else {
        return Reply::error("IOERR error or timeout connecting to the client");
    };
    let outcome = match tokio::time::timeout(migrate.timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => send(stream, &migrate, &dumped).await,
        _ => return Reply::error("IOERR error or timeout writing to target instance"),
    };
    let (moved, error) = match outcome {
        Ok(restored) => restored,
        Err(reply) => return reply,
    };
    if !migrate.copy && !moved.is_empty() {
        if let Some(reply) = delete_moved(backend, db, &dumped, &moved).await {
            return reply;
        }
    }
    match error {
        Some(text) => Reply::Error(format!("ERR Target instance replied with error: {text}")),
        None => Reply::OK,
    }
}

/// Sends AUTH, SELECT and one RESTORE per key and reads the replies.
/// Returns the indexes (in `dumped`) of the keys the target took and the
/// first RESTORE error, or the reply when AUTH, SELECT or the connection
/// failed.
async fn send(
    stream: TcpStream,
    migrate: &Migrate,
    dumped: &[Dumped],
) -> Result<(Vec<usize>, Option<String>), Reply> {
    let mut request = Vec::new();
    if let Some((user, password)) = &migrate.auth {
        let mut auth: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = user {
            auth.push(user);
        }
        auth.push(password);
        append_command(&mut request, &auth);
    }
    let db = migrate.target_db.to_string();
    append_command(&mut request, &[b"SELECT", db.as_bytes()]);
    for key in dumped {
        let ttl = key.ttl_ms.to_string();
        let mut restore: Vec<&[u8]> = vec![b"RESTORE", &key.key, ttl.as_bytes(), &key.payload];
        if migrate.replace {
            restore.push(b"REPLACE");
        }
        append_command(&mut request, &restore);
    }
    let (reader, mut writer) = stream.into_split();
    let written = tokio::time::timeout(migrate.timeout, writer.write_all(&request)).await;
    if !matches!(written, Ok(Ok(()))) {
        return Err(Reply::error(
            "IOERR error or timeout writing to target instance",
        ));
    }
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let setup = usize::from(migrate.auth.is_some()) + 1;
    for _ in 0..setup {
        match read_line(&mut reader, &mut line, migrate.timeout).await? {
            Ok(()) => {}
            Err(text) => {
                return Err(Reply::Error(format!(
                    "ERR Target instance replied with error: {text}"
                )))
            }
        }
    }
    let (mut moved, mut first_error) = (Vec::new(), None);
    for at in 0..dumped.len() {
        match read_line(&mut reader, &mut line, migrate.timeout).await? {
            Ok(()) => moved.push(at),
            Err(text) => {
                first_error.get_or_insert(text);
            }
        }
    }
    Ok((moved, first_error))
}

/// Reads one reply line: `Ok(Ok(()))` for a status (`+...`), `Ok(Err(text))`
/// for an error (`-text`, or anything else the target sent), `Err(reply)` on
/// a timeout, a closed connection or a line too long.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
    timeout: Duration,
) -> Result<Result<(), String>, Reply> {
    line.clear();
    let read = async {
        loop {
            let buffer = reader.fill_buf().await?;
            if buffer.is_empty() {
                return Ok::<bool, std::io::Error>(false);
            }
            let (taken, done) = match buffer.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buffer.len(), false),
            };
            line.extend_from_slice(&buffer[..taken]);
            reader.consume(taken);
            if done {
                return Ok(true);
            }
            if line.len() > MAX_REPLY_LINE {
                return Ok(false);
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(true)) => {}
        _ => {
            return Err(Reply::error(
                "IOERR error or timeout reading to target instance",
            ))
        }
    }
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    Ok(match text.as_bytes().first() {
        Some(b'+') => Ok(()),
        Some(b'-') => Err(text[1..].to_string()),
        _ => Err(text.to_string()),
    })
}

/// Deletes the keys the target took, unless written since they were read
/// (then nothing is deleted and the reply says so); None when deleted.
async fn delete_moved<B: Backend>(
    backend: &B,
    db: u8,
    dumped: &[Dumped],
    moved: &[usize],
) -> Option<Reply> {
    let mut del = vec![Bytes::from_static(b"DEL")];
    del.extend(moved.iter().map(|&at| dumped[at].key.clone()));
    let op = Op::Multi {
        commands: vec![(db, del)],
        watched: moved.iter().map(|&at| dumped[at].token.clone()).collect(),
    };
    match backend.write(op).await {
        Ok(Output::NilArray) => Some(Reply::error(
            "ERR MIGRATE: a key was written while it was migrated; the target has the value read before that write, and no key was deleted here",
        )),
        Ok(_) => None,
        Err(e) => Some(CommandError::from(e).into()),
    }
}

/// MIGRATE's keys: the `key` argument, or (when it is empty) every
/// argument after `KEYS`.
fn migrate_keys(args: &[Bytes]) -> Vec<usize> {
    let keys = args
        .iter()
        .enumerate()
        .skip(6)
        .find(|(_, a)| a.eq_ignore_ascii_case(b"keys"))
        .map(|(at, _)| at + 1);
    match keys {
        Some(first) if args.get(3).is_some_and(|k| k.is_empty()) => (first..args.len()).collect(),
        _ => vec![3],
    }
}

/// The MIGRATE row: shown as a write (it deletes its keys), carried out by
/// the server itself (it talks to another server).
pub static MIGRATE_COMMANDS: &[CommandSpec] = &[crate::cmd::server(
    "migrate",
    -6,
    Flags::WRITE,
    "@keyspace",
    (3, 3, 1),
    migrate,
)
.keys_by(migrate_keys)
.acl(
    Categories::of(&[
        Categories::KEYSPACE,
        Categories::WRITE,
        Categories::SLOW,
        Categories::DANGEROUS,
    ]),
    (KeyAccess::RW, KeyAccess::RW),
)
.doc(
    "Atomically transfer a key from a Redis instance to another one.",
    "2.6.0",
    "This command actually executes a DUMP+DEL in the source instance, and a RESTORE in the target instance. See the pages of these commands for time complexity. Also an O(N) data transfer between the two instances is performed.",
)];

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::kv::{Command, Op};
    use crate::server::command::fake::FakeBackend;
    use crate::server::command::{execute, Session};
    use crate::server::reply::Reply;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn set(backend: &FakeBackend, key: &str, value: &str) {
        backend.db.lock().unwrap().apply(&Command {
            ts_ms: backend.now_ms,
            op: Op::Exec {
                db: 0,
                args: args(&format!("SET {key} {value}")),
            },
        });
    }

    /// A target on a free port: it takes one read of the request (MIGRATE
    /// writes it at once, and it is small), runs `meanwhile`, sends
    /// `replies` and returns what it read.
    async fn target(
        replies: &'static [u8],
        meanwhile: impl FnOnce() + Send + 'static,
    ) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = vec![0u8; 1 << 16];
            let n = stream.read(&mut seen).await.unwrap();
            seen.truncate(n);
            meanwhile();
            stream.write_all(replies).await.unwrap();
            seen
        });
        (port, served)
    }

    async fn run(backend: &FakeBackend, line: &str) -> Reply {
        let mut session = Session::new(1, None, None);
        execute(backend, &mut session, &args(line)).await.reply
    }

    /// AUTH2 and REPLACE reach the target as Redis sends them, and the key
    /// leaves this node once the target took it.
    #[tokio::test]
    async fn the_target_gets_auth_select_and_restore() {
        let backend = FakeBackend::new();
        set(&backend, "k", "v");
        let (port, served) = target(b"+OK\r\n+OK\r\n+OK\r\n", || {}).await;
        let reply = run(
            &backend,
            &format!("MIGRATE 127.0.0.1 {port} k 5 1000 REPLACE AUTH2 alice pw"),
        )
        .await;
        assert_eq!(reply, Reply::OK);
        let seen = String::from_utf8_lossy(&served.await.unwrap()).into_owned();
        assert!(
            seen.starts_with("*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n5\r\n*5\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n"),
            "{seen:?}"
        );
        assert!(seen.ends_with("$7\r\nREPLACE\r\n"), "{seen:?}");
        assert_eq!(run(&backend, "EXISTS k").await, Reply::Integer(0));
    }

    /// A key written after it was read is not deleted: the target has the
    /// older value, and the reply says so instead of losing the write.
    #[tokio::test]
    async fn a_key_written_while_it_migrates_is_kept() {
        let backend = Arc::new(FakeBackend::new());
        set(&backend, "k", "old");
        let writer = backend.clone();
        let (port, served) = target(b"+OK\r\n+OK\r\n", move || set(&writer, "k", "new")).await;
        let reply = run(&backend, &format!("MIGRATE 127.0.0.1 {port} k 0 1000")).await;
        served.await.unwrap();
        assert!(
            matches!(&reply, Reply::Error(e) if e.starts_with("ERR MIGRATE: a key was written while it was migrated")),
            "{reply:?}"
        );
        assert_eq!(run(&backend, "GET k").await, Reply::bulk_str("new"));
    }

    /// A target that never ends its reply line is cut off at the line
    /// limit, and one that answers RESTORE with an error leaves the key.
    #[tokio::test]
    async fn a_hostile_or_refusing_target_leaves_the_key() {
        let backend = FakeBackend::new();
        set(&backend, "k", "v");
        let endless: &'static [u8] =
            Box::leak(vec![b'+'; super::MAX_REPLY_LINE + 10].into_boxed_slice());
        let (port, _served) = target(endless, || {}).await;
        let reply = run(&backend, &format!("MIGRATE 127.0.0.1 {port} k 0 1000")).await;
        assert_eq!(
            reply,
            Reply::error("IOERR error or timeout reading to target instance")
        );
        let (port, _served) = target(b"+OK\r\n-ERR no room\r\n", || {}).await;
        let reply = run(&backend, &format!("MIGRATE 127.0.0.1 {port} k 0 1000")).await;
        assert_eq!(
            reply,
            Reply::error("ERR Target instance replied with error: ERR no room")
        );
        assert_eq!(run(&backend, "EXISTS k").await, Reply::Integer(1));
    }
}
