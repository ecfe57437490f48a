//! DUMP/RESTORE between real `redis-server` 7.0 and a 3-node dkv cluster, in
//! both directions, for every type and every encoding Redis writes.
//!
//! Each value is built in Redis with ordinary commands, then:
//! Redis DUMP → RESTORE into dkv (through a follower, so the write is
//! forwarded to the leader and replicated) → DEBUG DIGEST-VALUE equal to
//! Redis's → dkv DUMP → RESTORE into Redis under a new key → DIGEST-VALUE
//! equal to the original. OBJECT ENCODING must agree at each step, and the
//! test counts how many of dkv's payloads are byte-identical to Redis's.
//! RESTORE's errors and options (BUSYKEY, TTL, REPLACE, ABSTTL) and the
//! OBJECT / MEMORY USAGE replies for missing keys are compared reply for
//! reply.

use std::time::Duration;

use anyhow::{bail, Result};
use dkv_integration::redis_server::{start_redis, RedisServer};
use dkv_integration::{program_available, Cluster, RawConn, Reply};

/// Sends one command given as owned arguments.
async fn send(conn: &mut RawConn, args: &[Vec<u8>]) -> Result<Reply> {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    conn.command(&refs).await
}

fn words(line: &str) -> Vec<Vec<u8>> {
    line.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

/// (key, commands that build it in Redis). Each exercises one encoding.
fn values() -> Vec<(String, Vec<Vec<Vec<u8>>>)> {
    let mut out: Vec<(String, Vec<Vec<Vec<u8>>>)> = Vec::new();
    let mut add = |key: &str, cmds: Vec<Vec<Vec<u8>>>| out.push((key.to_string(), cmds));
    let set = |k: &str, v: Vec<u8>| vec![vec![b"SET".to_vec(), k.as_bytes().to_vec(), v]];
    // Strings: int, embstr, raw, LZF-compressible, incompressible binary.
    add("s:int", set("s:int", b"-12345".to_vec()));
    add("s:i64", set("s:i64", b"-9223372036854775808".to_vec()));
    add("s:emb", set("s:emb", b"hello world".to_vec()));
    add("s:44", set("s:44", vec![b'y'; 44]));
    add(
        "s:raw",
        set("s:raw", b"abcdefghijklmnopqrstuvwxyz0123456789".repeat(40)),
    );
    let noise: Vec<u8> = (0u32..3000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    add("s:bin", set("s:bin", noise));
    add("s:empty", set("s:empty", Vec::new()));
    // Lists: one node, several 8 KiB nodes, elements larger than a node.
    add(
        "l:small",
        vec![words(
            "RPUSH l:small a 1 -7 hello 70000 9223372036854775807",
        )],
    );
    let mut push = vec![b"RPUSH".to_vec(), b"l:many".to_vec()];
    push.extend((0..3000).map(|i| format!("element-{i}").into_bytes()));
    add("l:many", vec![push]);
    add(
        "l:big",
        vec![vec![
            b"RPUSH".to_vec(),
            b"l:big".to_vec(),
            vec![b'p'; 9000],
            b"x".to_vec(),
            vec![b'q'; 20_000],
        ]],
    );
    // Sets: intset (2-, 4-, 8-byte), 512-member intset, hashtable.
    add("z:set16", vec![words("SADD z:set16 1 2 3 -4")]);
    add("z:set32", vec![words("SADD z:set32 1 100000")]);
    add(
        "z:set64",
        vec![words("SADD z:set64 1 -9223372036854775808")],
    );
    let mut sadd = vec![b"SADD".to_vec(), b"z:set512".to_vec()];
    sadd.extend((0..512).map(|i| (i * 7).to_string().into_bytes()));
    add("z:set512", vec![sadd.clone()]);
    sadd[1] = b"z:set513".to_vec();
    sadd.push(b"99999".to_vec());
    add("z:set513", vec![sadd]);
    add("z:setstr", vec![words("SADD z:setstr a b c 1")]);
    // Sorted sets: listpack (integer and decimal scores), skiplist by count
    // and by member length, infinities.
    add(
        "zs:lp",
        vec![words("ZADD zs:lp 1 a 2.5 b -3 c 0.1 d 1e20 e")],
    );
    add("zs:inf", vec![words("ZADD zs:inf inf a -inf b 0 c")]);
    let mut zadd = vec![b"ZADD".to_vec(), b"zs:skip".to_vec()];
    for i in 0..200 {
        zadd.push(format!("{}", f64::from(i) / 7.0).into_bytes());
        zadd.push(format!("m{i}").into_bytes());
    }
    add("zs:skip", vec![zadd]);
    add(
        "zs:long",
        vec![vec![
            b"ZADD".to_vec(),
            b"zs:long".to_vec(),
            b"1".to_vec(),
            vec![b'm'; 70],
            b"2".to_vec(),
            b"x".to_vec(),
        ]],
    );
    // Hashes: listpack, hashtable by count and by value length.
    add(
        "h:lp",
        vec![words("HSET h:lp f v n 1 big 9223372036854775807")],
    );
    let mut hset = vec![b"HSET".to_vec(), b"h:many".to_vec()];
    for i in 0..600 {
        hset.push(format!("field{i}").into_bytes());
        hset.push(i.to_string().into_bytes());
    }
    add("h:many", vec![hset]);
    add(
        "h:long",
        vec![vec![
            b"HSET".to_vec(),
            b"h:long".to_vec(),
            b"f".to_vec(),
            vec![b'v'; 100],
        ]],
    );
    out
}

/// A real redis-server, a 3-node dkv cluster and a connection to one of its
/// followers (a write there is forwarded to the leader); `None` when
/// redis-server is not installed (the test skips).
async fn servers() -> Result<Option<(RedisServer, RawConn, Cluster, RawConn)>> {
    if !program_available("redis-server", "--version") {
        println!("SKIPPED: redis-server is not installed (.ci/run installs it)");
        return Ok(None);
    }
    let (server, redis) = start_redis().await?;
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let dkv = RawConn::connect(cluster.resp_addr((leader + 1) % 3)).await?;
    Ok(Some((server, redis, cluster, dkv)))
}

async fn digest(conn: &mut RawConn, key: &[u8]) -> Result<Reply> {
    conn.command(&[b"DEBUG", b"DIGEST-VALUE", key]).await
}

async fn encoding(conn: &mut RawConn, key: &[u8]) -> Result<Reply> {
    conn.command(&[b"OBJECT", b"ENCODING", key]).await
}

fn bulk(reply: Reply, what: &str) -> Result<Vec<u8>> {
    match reply {
        Reply::Bulk(Some(bytes)) => Ok(bytes),
        other => bail!("{what}: {other:?}"),
    }
}

/// Builds `key` in Redis with `cmds`, DUMPs it there and RESTOREs the
/// payload into dkv (which must answer OK); returns Redis's payload.
async fn restore_from_redis(
    redis: &mut RawConn,
    dkv: &mut RawConn,
    key: &str,
    cmds: &[Vec<Vec<u8>>],
) -> Result<Vec<u8>> {
    for cmd in cmds {
        if let Reply::Error(e) = send(redis, cmd).await? {
            bail!("building {key} in Redis: {e}");
        }
    }
    let key = key.as_bytes();
    let payload = bulk(redis.command(&[b"DUMP", key]).await?, "Redis DUMP")?;
    let reply = dkv.command(&[b"RESTORE", key, b"0", &payload]).await?;
    assert_eq!(
        reply,
        Reply::Simple("OK".into()),
        "RESTORE {key:?} into dkv"
    );
    Ok(payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_restore_round_trips_between_redis_and_dkv() -> Result<()> {
    let Some((_redis_server, mut redis, cluster, mut dkv)) = servers().await? else {
        return Ok(());
    };
    let mut identical = 0;
    let values = values();
    for (key, cmds) in &values {
        let payload = restore_from_redis(&mut redis, &mut dkv, key, cmds).await?;
        let key = key.as_bytes();
        let want = digest(&mut redis, key).await?;
        assert_eq!(
            digest(&mut dkv, key).await?,
            want,
            "digest of {key:?} in dkv"
        );
        assert_eq!(
            encoding(&mut dkv, key).await?,
            encoding(&mut redis, key).await?,
            "OBJECT ENCODING {key:?}"
        );
        // And back: dkv's DUMP restores into Redis to the same value.
        let ours = bulk(dkv.command(&[b"DUMP", key]).await?, "dkv DUMP")?;
        if ours == payload {
            identical += 1;
        }
        let copy = [key, b":back"].concat();
        let reply = redis.command(&[b"RESTORE", &copy, b"0", &ours]).await?;
        assert_eq!(
            reply,
            Reply::Simple("OK".into()),
            "RESTORE {key:?} into Redis"
        );
        let back = digest(&mut redis, &copy).await?;
        let Reply::Array(Some(back)) = back else {
            bail!("digest {back:?}")
        };
        let Reply::Array(Some(want)) = want else {
            bail!("digest {want:?}")
        };
        assert_eq!(back, want, "digest of {key:?} after dkv → Redis");
        assert_eq!(
            encoding(&mut redis, &copy).await?,
            encoding(&mut redis, key).await?,
            "encoding of {key:?} after dkv → Redis"
        );
    }
    println!(
        "DUMP/RESTORE: {} values round-tripped Redis → dkv → Redis; {identical} of dkv's payloads byte-identical to Redis's",
        values.len()
    );
    assert!(
        identical * 2 > values.len(),
        "only {identical} identical payloads"
    );
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_object_replies_match_redis() -> Result<()> {
    let Some((_redis_server, mut redis, cluster, mut dkv)) = servers().await? else {
        return Ok(());
    };
    redis.command(&[b"SET", b"k", b"v"]).await?;
    let payload = bulk(redis.command(&[b"DUMP", b"k"]).await?, "DUMP")?;
    let mut corrupt = payload.clone();
    corrupt[2] ^= 1;
    let p = payload.as_slice();
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"SET", b"k", b"v"],
        vec![b"RESTORE", b"k", b"0", p],
        vec![b"RESTORE", b"k", b"x", b"junk"],
        vec![b"RESTORE", b"n", b"x", p],
        vec![b"RESTORE", b"n", b"-1", p],
        vec![b"RESTORE", b"n", b"0", b"junk"],
        vec![b"RESTORE", b"n", b"0", &corrupt],
        vec![b"RESTORE", b"k", b"0", b"junk", b"REPLACE"],
        vec![b"RESTORE", b"n", b"0", p, b"FOO"],
        vec![b"RESTORE", b"n", b"0", p, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"n", b"0", p, b"FREQ", b"300"],
        vec![b"RESTORE", b"n", b"0", p, b"FREQ", b"1", b"IDLETIME", b"1"],
        vec![b"RESTORE", b"n", b"100000", p, b"IDLETIME", b"5"],
        vec![b"EXISTS", b"n"],
        vec![b"RESTORE", b"n", b"1", p, b"ABSTTL", b"REPLACE"],
        vec![b"EXISTS", b"n"],
        vec![b"RESTORE", b"k", b"0", p, b"REPLACE"],
        vec![b"DUMP", b"nokey"],
        vec![b"DUMP"],
        vec![b"OBJECT", b"ENCODING", b"nokey"],
        vec![b"OBJECT", b"FREQ", b"k"],
        vec![b"OBJECT", b"FOO", b"k"],
        vec![b"OBJECT", b"ENCODING"],
        vec![b"OBJECT", b"REFCOUNT", b"k"],
        vec![b"MEMORY", b"USAGE", b"nokey"],
        vec![b"MEMORY", b"USAGE", b"k", b"SAMPLES", b"-1"],
        vec![b"MEMORY", b"USAGE", b"k", b"FOO"],
        vec![b"MEMORY", b"USAGE"],
        vec![b"SET", b"i", b"42"],
        vec![b"OBJECT", b"REFCOUNT", b"i"],
        vec![b"OBJECT", b"ENCODING", b"i"],
    ];
    for args in &cases {
        let r = redis.command(args).await?;
        let d = dkv.command(args).await?;
        let shown: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(&a[..a.len().min(20)]).into_owned())
            .collect();
        assert_eq!(d, r, "{shown:?}");
    }
    println!(
        "RESTORE/OBJECT/MEMORY: {} replies equal to Redis's",
        cases.len()
    );
    // COMMAND INFO: name, arity, flags and key positions of the commands and
    // of the key subcommands (the HELP subcommands differ: dkv has no
    // `stale` flag).
    fn head(entry: &Reply) -> Vec<Reply> {
        match entry {
            Reply::Array(Some(fields)) => fields.iter().take(6).cloned().collect(),
            other => vec![other.clone()],
        }
    }
    fn subs(entry: &Reply) -> Vec<Vec<Reply>> {
        let is_help = |h: &Vec<Reply>| matches!(h.first(), Some(Reply::Bulk(Some(n))) if n.ends_with(b"|help"));
        match entry {
            Reply::Array(Some(fields)) => match fields.get(9) {
                Some(Reply::Array(Some(subs))) => {
                    subs.iter().map(head).filter(|h| !is_help(h)).collect()
                }
                _ => vec![],
            },
            _ => vec![],
        }
    }
    for name in [&b"dump"[..], b"restore", b"object", b"memory"] {
        let r = redis.command(&[b"COMMAND", b"INFO", name]).await?;
        let d = dkv.command(&[b"COMMAND", b"INFO", name]).await?;
        let (Reply::Array(Some(r)), Reply::Array(Some(d))) = (r, d) else {
            bail!("COMMAND INFO {name:?}")
        };
        assert_eq!(head(&d[0]), head(&r[0]), "COMMAND INFO {name:?}");
        let dkv_subs = subs(&d[0]);
        // Redis's MEMORY DOCTOR/STATS/PURGE/MALLOC-STATS are not offered.
        let mut redis_subs = subs(&r[0]);
        redis_subs.retain(|h| dkv_subs.iter().any(|x| x.first() == h.first()));
        let mut dkv_subs = dkv_subs.clone();
        let key = |h: &Vec<Reply>| format!("{:?}", h.first());
        redis_subs.sort_by_key(key);
        dkv_subs.sort_by_key(key);
        assert_eq!(dkv_subs.len(), redis_subs.len(), "{name:?} subcommands");
        assert_eq!(dkv_subs, redis_subs, "COMMAND INFO {name:?} subcommands");
    }
    cluster.shutdown();
    Ok(())
}

/// Commands, each as its arguments.
type Commands = Vec<Vec<Vec<u8>>>;

/// Streams built in Redis by these commands (explicit ids; groups read with
/// `>`, so delivery and seen times are Redis's clock, carried by the
/// payload). `true`: no consumer times and no deleted entry inside a node,
/// so the same commands sent to dkv make a byte-identical DUMP.
fn streams() -> Vec<(&'static str, bool, Commands)> {
    let mut out = Vec::new();
    out.push((
        "x:small",
        true,
        vec![
            words("XADD x:small 1-1 f v"),
            words("XADD x:small 1-2 f 12345"),
            words("XADD x:small 2-0 a 1 b -7"),
            words("XGROUP CREATE x:small g0 $"),
            words("XGROUP CREATE x:small g1 0 ENTRIESREAD 1"),
        ],
    ));
    let mut many: Commands = (0..260)
        .map(|i| {
            words(&format!(
                "XADD x:many {}-{} name user-{i} n {}",
                1000 + i / 3,
                i % 3,
                i * 7
            ))
        })
        .collect();
    many.push(words("XTRIM x:many MAXLEN ~ 150"));
    many.push(words("XSETID x:many 5000-0"));
    out.push(("x:many", true, many));
    out.push((
        "x:empty",
        true,
        vec![words("XGROUP CREATE x:empty grp $ MKSTREAM")],
    ));
    let mut long = vec![
        b"XADD".to_vec(),
        b"x:long".to_vec(),
        b"1-1".to_vec(),
        b"p".to_vec(),
    ];
    long.push(b"abcdefghij".repeat(40));
    out.push(("x:long", true, vec![long]));
    out.push((
        "x:groups",
        false,
        vec![
            words("XADD x:groups 1-1 f v"),
            words("XADD x:groups 1-2 f w"),
            words("XADD x:groups 3-0 other 1"),
            words("XADD x:groups 4-0 f z"),
            words("XGROUP CREATE x:groups g 0"),
            words("XREADGROUP GROUP g alice COUNT 2 STREAMS x:groups >"),
            words("XREADGROUP GROUP g bob COUNT 1 STREAMS x:groups >"),
            words("XGROUP CREATECONSUMER x:groups g carol"),
            words("XACK x:groups g 1-2"),
            words("XCLAIM x:groups g carol 0 3-0"),
            words("XGROUP CREATE x:groups h 1-2"),
            words("XREADGROUP GROUP h dave STREAMS x:groups >"),
        ],
    ));
    out.push((
        "x:deleted",
        false,
        vec![
            words("XADD x:deleted 7-0 k v0"),
            words("XADD x:deleted 7-1 k v1"),
            words("XADD x:deleted 7-2 k v2"),
            words("XADD x:deleted 7-3 k v3"),
            words("XDEL x:deleted 7-0 7-2"),
            words("XGROUP CREATE x:deleted g 0"),
            words("XREADGROUP GROUP g c STREAMS x:deleted >"),
            words("XDEL x:deleted 7-3"),
        ],
    ));
    out
}

/// `reply` with the values after the names in `names` (at any depth of a
/// name/value array) replaced by 0: the fields that are clocks or estimates.
fn masked(reply: Reply, names: &[&str]) -> Reply {
    match reply {
        Reply::Array(Some(items)) => {
            let mut out: Vec<Reply> = Vec::with_capacity(items.len());
            let mut mask_next = false;
            for item in items {
                if mask_next {
                    out.push(Reply::Integer(0));
                    mask_next = false;
                    continue;
                }
                mask_next = matches!(&item, Reply::Bulk(Some(n)) if names.iter().any(|m| m.as_bytes() == n.as_slice()));
                out.push(masked(item, names));
            }
            Reply::Array(Some(out))
        }
        other => other,
    }
}

/// XPENDING's extended form with each entry's idle time (a clock) zeroed.
fn pending_without_idle(reply: Reply) -> Reply {
    match reply {
        Reply::Array(Some(entries)) => Reply::Array(Some(
            entries
                .into_iter()
                .map(|e| match e {
                    Reply::Array(Some(mut f)) if f.len() == 4 => {
                        f[2] = Reply::Integer(0);
                        Reply::Array(Some(f))
                    }
                    other => other,
                })
                .collect(),
        )),
        other => other,
    }
}

/// The stream reads compared between two servers (clocks masked):
/// XINFO STREAM FULL, XRANGE, XREVRANGE, XLEN, and per group XINFO GROUPS,
/// XINFO CONSUMERS, XPENDING (summary and extended).
async fn stream_view(conn: &mut RawConn, key: &[u8]) -> Result<Vec<Reply>> {
    // dkv's radix-tree-nodes is an estimate (README, Streams).
    let full = conn.command(&[b"XINFO", b"STREAM", key, b"FULL"]).await?;
    let mut view = vec![masked(full, &["radix-tree-nodes"])];
    view.push(conn.command(&[b"XRANGE", key, b"-", b"+"]).await?);
    view.push(
        conn.command(&[b"XREVRANGE", key, b"+", b"-", b"COUNT", b"3"])
            .await?,
    );
    view.push(conn.command(&[b"XLEN", key]).await?);
    let groups = conn.command(&[b"XINFO", b"GROUPS", key]).await?;
    let names: Vec<Vec<u8>> = match &groups {
        Reply::Array(Some(gs)) => gs
            .iter()
            .filter_map(|g| match g {
                Reply::Array(Some(f)) => match f.get(1) {
                    Some(Reply::Bulk(Some(n))) => Some(n.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    view.push(groups);
    for g in &names {
        let consumers = conn.command(&[b"XINFO", b"CONSUMERS", key, g]).await?;
        view.push(masked(consumers, &["idle"]));
        view.push(conn.command(&[b"XPENDING", key, g]).await?);
        let extended = conn
            .command(&[b"XPENDING", key, g, b"-", b"+", b"100"])
            .await?;
        view.push(pending_without_idle(extended));
    }
    Ok(view)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_dump_restore_between_redis_and_dkv() -> Result<()> {
    let Some((_redis_server, mut redis, cluster, mut dkv)) = servers().await? else {
        return Ok(());
    };
    let (mut identical, mut same_commands) = (0, 0);
    let all = streams();
    for (key, timeless, cmds) in &all {
        // Redis → dkv: every read answers as Redis's.
        let payload = restore_from_redis(&mut redis, &mut dkv, key, cmds).await?;
        let key = key.as_bytes();
        let want = stream_view(&mut redis, key).await?;
        assert_eq!(stream_view(&mut dkv, key).await?, want, "{key:?} in dkv");
        assert_eq!(digest(&mut dkv, key).await?, digest(&mut redis, key).await?);
        assert_eq!(
            encoding(&mut dkv, key).await?,
            encoding(&mut redis, key).await?
        );
        // dkv → Redis: the same stream again.
        let ours = bulk(dkv.command(&[b"DUMP", key]).await?, "dkv DUMP")?;
        if ours == payload {
            identical += 1;
        } else {
            assert!(!timeless, "dkv's DUMP of {key:?} differs from Redis's");
        }
        let copy = [key, b":back"].concat();
        let reply = redis.command(&[b"RESTORE", &copy, b"0", &ours]).await?;
        assert_eq!(
            reply,
            Reply::Simple("OK".into()),
            "RESTORE {key:?} into Redis"
        );
        let back = stream_view(&mut redis, &copy).await?;
        assert_eq!(back, want, "{key:?} after dkv → Redis");
        // The same commands sent to dkv make the same bytes.
        if *timeless {
            let mine = [key, b":mine"].concat();
            for cmd in cmds {
                let mut cmd = cmd.clone();
                for arg in cmd.iter_mut() {
                    if arg.as_slice() == key {
                        *arg = mine.clone();
                    }
                }
                if let Reply::Error(e) = send(&mut dkv, &cmd).await? {
                    bail!("building {key:?} in dkv: {e}");
                }
            }
            let built = bulk(dkv.command(&[b"DUMP", &mine]).await?, "dkv DUMP")?;
            assert_eq!(
                built, payload,
                "dkv's DUMP of {key:?} built by the same commands"
            );
            same_commands += 1;
        }
    }
    println!(
        "stream DUMP/RESTORE: {} streams Redis → dkv → Redis with equal reads; {identical} of dkv's payloads byte-identical to Redis's; {same_commands} built by the same commands in dkv byte-identical",
        all.len()
    );
    assert_eq!(identical, all.iter().filter(|(_, t, _)| *t).count() + 1);
    cluster.shutdown();
    Ok(())
}

/// MIGRATE from a dkv follower to a real Redis and from that Redis back to
/// dkv: keys move with their values and TTLs, COPY leaves them, REPLACE
/// overwrites, and dkv's replies for a missing key, a busy target key, a bad
/// AUTH, an unusable port and bad options are the ones Redis gives for the
/// same MIGRATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_keys_between_dkv_and_redis() -> Result<()> {
    let Some((server, mut redis, cluster, mut dkv)) = servers().await? else {
        return Ok(());
    };
    let (host, port) = (server.addr.ip().to_string(), server.addr.port().to_string());
    let run = |line: String| words(&line);
    for line in [
        "SET m:s hello",
        "SET m:t ttl PX 60000",
        "RPUSH m:l a b c",
        "SET m:busy here",
    ] {
        send(&mut dkv, &run(line.to_string())).await?;
    }
    send(&mut redis, &run("SET m:busy there".to_string())).await?;
    let migrate = |rest: &str| run(format!("MIGRATE {host} {port} {rest}"));
    // One key, moved.
    let reply = send(&mut dkv, &migrate("m:s 0 5000")).await?;
    anyhow::ensure!(
        reply == Reply::Simple("OK".into()),
        "MIGRATE m:s -> {reply:?}"
    );
    anyhow::ensure!(send(&mut dkv, &run("EXISTS m:s".into())).await? == Reply::Integer(0));
    anyhow::ensure!(
        send(&mut redis, &run("GET m:s".into())).await? == Reply::Bulk(Some(b"hello".to_vec()))
    );
    // KEYS with COPY into database 2: both kept, the TTL carried over.
    let mut args = run(format!("MIGRATE {host} {port}"));
    args.push(Vec::new());
    args.extend(run("2 5000 COPY KEYS m:t m:l m:none".into()));
    let reply = send(&mut dkv, &args).await?;
    anyhow::ensure!(
        reply == Reply::Simple("OK".into()),
        "MIGRATE KEYS COPY -> {reply:?}"
    );
    anyhow::ensure!(send(&mut dkv, &run("EXISTS m:t m:l".into())).await? == Reply::Integer(2));
    send(&mut redis, &run("SELECT 2".into())).await?;
    let ttl = send(&mut redis, &run("PTTL m:t".into())).await?;
    anyhow::ensure!(
        matches!(ttl, Reply::Integer(ms) if ms > 50_000 && ms <= 60_000),
        "PTTL m:t on Redis -> {ttl:?}"
    );
    let list = send(&mut redis, &run("LRANGE m:l 0 -1".into())).await?;
    anyhow::ensure!(
        list == Reply::Array(Some(
            ["a", "b", "c"]
                .iter()
                .map(|e| Reply::Bulk(Some(e.as_bytes().to_vec())))
                .collect()
        )),
        "LRANGE m:l on Redis -> {list:?}"
    );
    send(&mut redis, &run("SELECT 0".into())).await?;
    // REPLACE overwrites the busy key, and the key leaves dkv.
    let reply = send(&mut dkv, &migrate("m:busy 0 5000 REPLACE")).await?;
    anyhow::ensure!(
        reply == Reply::Simple("OK".into()),
        "MIGRATE REPLACE -> {reply:?}"
    );
    anyhow::ensure!(
        send(&mut redis, &run("GET m:busy".into())).await? == Reply::Bulk(Some(b"here".to_vec()))
    );
    // Back from Redis into dkv (dkv's RESTORE as MIGRATE sends it).
    let dkv_addr = cluster.resp_addr(cluster.leader());
    let back = run(format!(
        "MIGRATE {} {} m:busy 0 5000",
        dkv_addr.ip(),
        dkv_addr.port()
    ));
    let reply = send(&mut redis, &back).await?;
    anyhow::ensure!(
        reply == Reply::Simple("OK".into()),
        "Redis MIGRATE to dkv -> {reply:?}"
    );
    anyhow::ensure!(
        send(&mut dkv, &run("GET m:busy".into())).await? == Reply::Bulk(Some(b"here".to_vec()))
    );
    // The same failing MIGRATEs, sent to both: the same replies. Each
    // source has the key, and the target (the other Redis port, or a port
    // nobody listens on) refuses as described.
    send(&mut dkv, &run("SET m:x 1".into())).await?;
    send(&mut redis, &run("SET m:x 1".into())).await?;
    send(&mut redis, &run("SET m:taken 1".into())).await?;
    send(&mut dkv, &run("SET m:taken 1".into())).await?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let other = server.addr.port();
    let cases = [
        format!("MIGRATE 127.0.0.1 {other} m:none 0 1000"),
        format!("MIGRATE 127.0.0.1 {closed} m:x 0 300"),
        format!("MIGRATE 127.0.0.1 {other} m:x 0 1000 BOGUS"),
        format!("MIGRATE 127.0.0.1 {other} m:x 0 1000 KEYS m:x"),
        format!("MIGRATE 127.0.0.1 {other} m:x 0 soon"),
        format!("MIGRATE 127.0.0.1 {other} m:x x 1000"),
    ];
    for case in &cases {
        let want = send(&mut redis, &run(case.clone())).await?;
        let got = send(&mut dkv, &run(case.clone())).await?;
        anyhow::ensure!(got == want, "{case}: dkv {got:?}, Redis {want:?}");
    }
    // A busy key and a bad AUTH, against Redis as the target of both.
    let busy = send(&mut dkv, &migrate("m:taken 0 1000")).await?;
    anyhow::ensure!(
        busy == Reply::Error(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists."
                .into()
        ),
        "busy -> {busy:?}"
    );
    anyhow::ensure!(send(&mut dkv, &run("EXISTS m:taken".into())).await? == Reply::Integer(1));
    let auth = send(&mut dkv, &migrate("m:x 0 1000 AUTH secret")).await?;
    anyhow::ensure!(
        matches!(&auth, Reply::Error(e) if e.starts_with("ERR Target instance replied with error: ERR AUTH")),
        "AUTH -> {auth:?}"
    );
    drop(cluster);
    Ok(())
}
