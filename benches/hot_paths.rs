//! criterion benches for the hot paths of a write (issue 7): RESP decode of a
//! pipelined batch, reply encode, the Raft core replicating and committing a
//! batch of proposals on three in-memory nodes, the WAL appending and syncing a
//! batch, and the state machine applying SETs and a write script.
//!
//! Run: `make bench-hot` (or `cargo bench --bench hot_paths`). Per-iteration
//! figures are for a whole batch; divide by the batch size for one request.

use std::collections::VecDeque;
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dkv::kv::hash::Hash;
use dkv::kv::list::List;
use dkv::kv::set::Set;
use dkv::kv::zset::{AddFlags, ZSet};
use dkv::kv::{Command, Db, Op, Shared};
use dkv::raft::{
    Config, Entry, EntryKind, Envelope, InitialState, LogIndex, NodeId, Raft, Role, SnapshotMeta,
    Term,
};
use dkv::server::codec::{FrameLimits, RequestParser};
use dkv::server::reply::{Protocol, Reply};
use dkv::store::{LogStore, Wal};

// The server's allocator, so that allocation-heavy paths cost here what
// they cost in `dkv-server`.
#[global_allocator]
static GLOBAL: dkv::metrics::alloc::Counting<mimalloc::MiMalloc> =
    dkv::metrics::alloc::Counting::new(mimalloc::MiMalloc);

const BATCH: usize = 256;
const VALUE: [u8; 64] = [b'v'; 64];

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key:{i:012}"))
}

/// A plain SET of key `i` to [`VALUE`].
fn set_of(i: usize) -> Command {
    Command {
        ts_ms: 1_000_000,
        op: Op::Set {
            key: key(i),
            value: Bytes::from_static(&VALUE),
        },
    }
}

fn pipelined_sets(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$16\r\n");
        out.extend_from_slice(&key(i));
        out.extend_from_slice(b"\r\n$64\r\n");
        out.extend_from_slice(&VALUE);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn resp(c: &mut Criterion) {
    let input = pipelined_sets(BATCH);
    let mut group = c.benchmark_group("resp");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("decode 256 pipelined SETs", |b| {
        b.iter_batched(
            || BytesMut::from(&input[..]),
            |mut buf| {
                let mut parser = RequestParser::new(FrameLimits::default());
                let mut n = 0;
                while let Ok(Some(args)) = parser.next_request(&mut buf) {
                    n += args.len();
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    // Each request's name is looked up in the command table (twice: the
    // connection's grouping, then its preparation), as clients send it.
    let names: Vec<&[u8]> = [
        &b"SET"[..],
        b"get",
        b"LPUSH",
        b"hset",
        b"EVALSHA",
        b"zadd",
        b"PING",
        b"incr",
    ]
    .into_iter()
    .cycle()
    .take(BATCH)
    .collect();
    group.bench_function("look up 256 command names", |b| {
        b.iter(|| {
            let mut found = 0;
            for name in &names {
                found += dkv::cmd::lookup(black_box(name)).map_or(0, |(i, _)| i);
            }
            black_box(found)
        })
    });
    let value = Bytes::from_static(&VALUE);
    group.bench_function("encode 256 replies (+OK and bulk)", |b| {
        let mut out = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            for i in 0..BATCH {
                if i % 2 == 0 {
                    Reply::OK.encode(Protocol::Resp2, &mut out);
                } else {
                    Reply::Bulk(value.clone()).encode(Protocol::Resp2, &mut out);
                }
            }
            black_box(out.len())
        })
    });
    group.finish();
}

/// Three Raft cores with a perfect in-memory network; persisting is free.
struct Trio {
    nodes: Vec<Raft>,
}

impl Trio {
    fn new() -> Trio {
        let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
        let nodes = voters
            .iter()
            .map(|&id| {
                Raft::new(
                    Config::new(id, voters.clone()),
                    InitialState::default(),
                    id.0,
                )
                .expect("a valid config")
            })
            .collect();
        let mut trio = Trio { nodes };
        while trio.nodes[0].status().role != Role::Leader {
            trio.nodes[0].tick();
            trio.settle();
        }
        trio
    }

    /// Settles, checks that a batch committed since `before`, and compacts
    /// the logs; the new commit index.
    fn commit_all(&mut self, before: LogIndex) -> LogIndex {
        self.settle();
        let after = self.nodes[0].status().commit_index;
        assert!(
            after.0 >= before.0 + BATCH as u64,
            "{before:?} -> {after:?}"
        );
        self.compact();
        after
    }

    /// Compacts every node's log to what it applied, keeping the log (and
    /// memory) bounded across iterations.
    fn compact(&mut self) {
        for node in &mut self.nodes {
            let status = node.status();
            node.compact(SnapshotMeta {
                last_included_index: status.last_applied,
                last_included_term: status.term,
                membership: dkv::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
            });
        }
    }

    /// Delivers every message until no node has anything to do.
    fn settle(&mut self) {
        let mut queue: VecDeque<Envelope> = VecDeque::new();
        loop {
            for node in &mut self.nodes {
                while node.has_ready() {
                    let mut ready = node.ready();
                    queue.extend(ready.messages.drain(..));
                    node.advance(ready);
                }
            }
            let Some(envelope) = queue.pop_front() else {
                return;
            };
            let to = (envelope.to.0 - 1) as usize;
            let _ = self.nodes[to].step(envelope);
        }
    }
}

fn raft(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft");
    group.throughput(Throughput::Elements(BATCH as u64));
    let payload = Bytes::from(vec![b'x'; 100]);
    let mut trio = Trio::new();
    group.bench_function(
        "propose, replicate and commit 256 entries on 3 nodes",
        |b| {
            b.iter(|| {
                let before = trio.nodes[0].status().commit_index;
                for _ in 0..BATCH {
                    trio.nodes[0]
                        .propose(payload.clone())
                        .expect("the leader takes proposals");
                }
                black_box(trio.commit_all(before))
            })
        },
    );
    // A leader under load: a proposal arrives, the driver takes a
    // `ready()`, and only then does the next one arrive, while the first
    // AppendEntries to each follower waits for its ack (the acks are
    // delivered after the 256 proposals).
    group.bench_function("propose 256 entries, one ready() each, acks after", |b| {
        b.iter(|| {
            let before = trio.nodes[0].status().commit_index;
            let mut held = Vec::new();
            for _ in 0..BATCH {
                trio.nodes[0]
                    .propose(payload.clone())
                    .expect("the leader takes proposals");
                let mut ready = trio.nodes[0].ready();
                held.append(&mut ready.messages);
                trio.nodes[0].advance(ready);
            }
            for envelope in held {
                let to = (envelope.to.0 - 1) as usize;
                let _ = trio.nodes[to].step(envelope);
            }
            black_box(trio.commit_all(before))
        })
    });
    group.finish();
}

fn wal(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let (mut wal, _) = Wal::open(dir.path()).expect("a fresh WAL");
    let mut next = 1u64;
    let data = Bytes::from(vec![b'x'; 100]);
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("append 256 entries and fdatasync", |b| {
        b.iter(|| {
            let entries: Vec<Entry> = (0..BATCH as u64)
                .map(|i| Entry {
                    term: Term(1),
                    index: LogIndex(next + i),
                    kind: EntryKind::Normal,
                    data: data.clone(),
                })
                .collect();
            next += BATCH as u64;
            wal.append(&entries).expect("append");
            wal.sync().expect("fdatasync");
        })
    });
    group.finish();
}

/// The command `args` in database 0, as apply gets it.
fn exec(args: &[&str]) -> Command {
    Command::exec(1_000_000, 0, args)
}

/// Lower-case hex SHA1 of `text` (a script's name).
fn sha1_hex(text: &str) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A map of `n` keys with 64-byte values; every `ttl_every`-th key has a TTL.
fn db_with_keys(n: usize, ttl_every: Option<usize>) -> Db {
    let mut db = Db::new();
    for i in 0..n {
        db.apply(&set_of(i));
        if ttl_every.is_some_and(|every| i % every == 0) {
            db.apply(&exec(&["EXPIRE", &format!("key:{i:012}"), "3600"]));
        }
    }
    db
}

fn kv(c: &mut Criterion) {
    let commands: Vec<Command> = (0..BATCH).map(set_of).collect();
    let mut group = c.benchmark_group("kv");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("apply 256 SETs (overwrites)", |b| {
        let mut db = Db::new();
        b.iter(|| {
            for command in &commands {
                black_box(db.apply(command));
            }
        })
    });
    // redis-benchmark's -r 100000: SETs land on random keys of a 100,000-key
    // map, so every lookup walks a big tree (and misses the cache).
    let spread: Vec<Command> = (0..BATCH)
        .map(|i| set_of((i * 7_919 + 13) % 100_000))
        .collect();
    group.bench_function("apply 256 SETs over 100,000 keys", |b| {
        let mut db = db_with_keys(100_000, None);
        b.iter(|| {
            for command in &spread {
                black_box(db.apply(command));
            }
        })
    });
    // A cache's SET EX over keys that all have a TTL: every write moves
    // its key in the deadline index.
    let value = "v".repeat(64);
    let set_ex: Vec<Command> = (0..BATCH)
        .map(|i| {
            let key = format!("key:{:012}", (i * 7_919 + 13) % 100_000);
            exec(&["SET", &key, &value, "EX", "3600"])
        })
        .collect();
    group.bench_function("apply 256 SET EX over 100,000 keys with TTLs", |b| {
        let mut db = db_with_keys(100_000, Some(1));
        let mut set_ex = set_ex.clone();
        b.iter(|| {
            // The clock moves on, as the leader's does: each SET EX takes
            // its key from its old deadline to one after every other.
            for command in &mut set_ex {
                command.ts_ms += 1;
                black_box(db.apply(command));
            }
        })
    });
    // A rate limiter's script (make bench's EVALSHA): INCR and EXPIRE of
    // random counters, as every replica applies it.
    let script =
        "local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], ARGV[1]) return n";
    let evalsha: Vec<Command> = (0..BATCH)
        .map(|i| {
            exec(&[
                "EVALSHA",
                &sha1_hex(script),
                "1",
                &format!("rl:{:012}", i * 7_919 % 100_000),
                "60",
            ])
        })
        .collect();
    group.bench_function("apply 256 EVALSHA of INCR + EXPIRE", |b| {
        let mut db = Db::new();
        db.apply(&exec(&["SCRIPT", "LOAD", script]));
        b.iter(|| {
            for command in &evalsha {
                black_box(db.apply(command));
            }
        })
    });
    group.bench_function("decode and apply 256 encoded SET entries", |b| {
        let encoded: Vec<Bytes> = commands.iter().map(Command::encode).collect();
        let mut db = Db::new();
        b.iter(|| {
            for bytes in &encoded {
                let command = Command::decode_shared(bytes).expect("decodes");
                black_box(db.apply(&command));
            }
        })
    });
    // What a follower does to each entry of an AppendEntries before it
    // stores it (`node/validate.rs`): the check, beside a full decode.
    let lpushes: Vec<Bytes> = (0..256)
        .map(|i| {
            Command::exec(
                7,
                0,
                &[
                    "LPUSH",
                    &format!("list:{i}"),
                    std::str::from_utf8(&VALUE).expect("ASCII"),
                ],
            )
            .encode()
        })
        .collect();
    group.bench_function("check 256 LPUSH payloads", |b| {
        b.iter(|| {
            for bytes in &lpushes {
                black_box(Command::check(bytes).is_ok());
            }
        })
    });
    group.bench_function("decode 256 LPUSH payloads", |b| {
        b.iter(|| {
            for bytes in &lpushes {
                black_box(Command::decode_shared(bytes).is_ok());
            }
        })
    });
    // Apply's own parse of a list write (a typed operation that borrows
    // its arguments): each LPUSH followed by the LPOP that empties it again.
    let push_pops: Vec<Bytes> = (0..128)
        .flat_map(|i| {
            let key = format!("list:{i}");
            let value = std::str::from_utf8(&VALUE).expect("ASCII");
            [
                Command::exec(7, 0, &["LPUSH", &key, value]).encode(),
                Command::exec(7, 0, &["LPOP", &key]).encode(),
            ]
        })
        .collect();
    group.bench_function("decode and apply 128 LPUSH and 128 LPOP entries", |b| {
        let mut db = Db::new();
        b.iter(|| {
            for bytes in &push_pops {
                let command = Command::decode_shared(bytes).expect("decodes");
                black_box(db.apply(&command));
            }
        })
    });
    group.finish();

    // A follower between two snapshots: while a snapshot's copy holds the
    // map, the first write to each chunk of slots copies the chunk (each
    // value in it shared or copied), and the snapshot's copy is dropped
    // once written. Writes spread over 100,000 keys copy most chunks.
    let spread_4096: Vec<Command> = (0..4096)
        .map(|i| set_of((i * 7_919 + 13) % 100_000))
        .collect();
    let mut group = c.benchmark_group("kv");
    group.sample_size(20);
    group.throughput(Throughput::Elements(spread_4096.len() as u64));
    group.bench_function(
        "apply 4096 SETs over 100,000 keys a snapshot holds, then drop the snapshot",
        |b| {
            b.iter_batched(
                || db_with_keys(100_000, None),
                |mut db| {
                    let held = db.snapshot_chunks(1 << 20);
                    for command in &spread_4096 {
                        black_box(db.apply(command));
                    }
                    drop(held);
                    db
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();

    // Restart: rebuilding the map from a snapshot of 100,000 keys (with
    // TTLs on a tenth of them), as a node does before replaying its log.
    let db = db_with_keys(100_000, Some(10));
    let snapshot = db.snapshot_bytes();
    let mut group = c.benchmark_group("kv");
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("write a snapshot of 100,000 keys", |b| {
        b.iter(|| black_box(db.snapshot_bytes()))
    });
    group.bench_function("restore a snapshot of 100,000 keys", |b| {
        b.iter(|| black_box(Db::restore(&snapshot).expect("restores")))
    });
    group.finish();
}

/// The first write to a big collection that a snapshot still holds: the
/// writer's copy (`kv::Shared`) is what every replica does in one apply
/// turn, at the same moment, so it must stay far below an election timeout.
fn collections(c: &mut Criterion) {
    const MEMBERS: usize = 1_000_000;
    let mut zset = ZSet::new_skiplist();
    let mut set = Set::new();
    for i in 0..MEMBERS {
        let member = format!("member:{i:012}");
        zset.add(member.as_bytes(), i as f64, AddFlags::default());
        set.insert(member.as_bytes());
    }
    let mut list = List::new();
    for i in 0..MEMBERS {
        // A queue's backlog: a job id and a small payload.
        list.push_back(format!("{{\"jid\":\"{i:012}\",\"args\":[1,2,3]}}").as_bytes());
    }
    let mut hash = Hash::new();
    for i in 0..MEMBERS {
        hash.insert(
            Bytes::from(format!("field:{i:012}")),
            Bytes::from(format!("value:{i}")),
        );
    }
    let zset = Shared::new(zset);
    let set = Shared::new(set);
    let hash = Shared::new(hash);
    let list = Shared::new(list);
    let mut group = c.benchmark_group("collections");
    group.sample_size(10);
    first_write(&mut group, "ZADD to a 1M-member sorted set", &zset, |z| {
        z.add(b"fresh member", 0.5, AddFlags::default());
    });
    first_write(&mut group, "SADD to a 1M-member set", &set, |s| {
        s.insert(b"fresh member");
    });
    first_write(&mut group, "HSET to a 1M-field hash", &hash, |h| {
        h.insert(Bytes::from_static(b"fresh field"), Bytes::from_static(b"v"));
    });
    first_write(&mut group, "LPUSH to a 1M-element list", &list, |l| {
        l.push_front(b"fresh job");
    });
    group.finish();
}

/// redis-benchmark's ZADD with `-r`: a random member of a 100,000-member
/// sorted set gets a random score, so almost every call moves a member that
/// is already there.
fn zset_moves(c: &mut Criterion) {
    const MEMBERS: u64 = 100_000;
    // A fixed LCG: the same members and scores on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut zset = ZSet::new_skiplist();
    for i in 0..MEMBERS {
        zset.add(
            format!("element:{i:012}").as_bytes(),
            (next() % MEMBERS) as f64,
            AddFlags::default(),
        );
    }
    let calls: Vec<(Vec<u8>, f64)> = (0..4096)
        .map(|_| {
            let member = format!("element:{:012}", next() % MEMBERS).into_bytes();
            (member, (next() % MEMBERS) as f64)
        })
        .collect();
    let mut group = c.benchmark_group("collections");
    group.throughput(Throughput::Elements(calls.len() as u64));
    group.bench_function(
        "4096 ZADDs moving members of a 100,000-member sorted set",
        |b| {
            b.iter(|| {
                for (member, score) in &calls {
                    black_box(zset.add(member, *score, AddFlags::default()));
                }
            })
        },
    );
    group.finish();
}

/// Times `write` on a copy of `value` while another copy (the snapshot's)
/// still holds it; dropping the two is not timed.
fn first_write<T: Clone>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    what: &str,
    value: &Shared<T>,
    write: impl Fn(&mut T),
) {
    group.bench_function(format!("first {what} a snapshot holds"), |b| {
        b.iter_batched(
            || (value.clone(), value.clone()),
            |(held, mut live)| {
                write(&mut live);
                (held, live)
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, resp, raft, wal, kv, collections, zset_moves);
criterion_main!(benches);
