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
use dkv_integration::redis_server::start_redis;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_restore_round_trips_between_redis_and_dkv() -> Result<()> {
    if !program_available("redis-server", "--version") {
        println!("SKIPPED: redis-server is not installed (.ci/run installs it)");
        return Ok(());
    }
    let (_redis_server, mut redis) = start_redis().await?;
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let follower = (leader + 1) % 3;
    let mut dkv = RawConn::connect(cluster.resp_addr(follower)).await?;
    let mut identical = 0;
    let values = values();
    for (key, cmds) in &values {
        for cmd in cmds {
            let reply = send(&mut redis, cmd).await?;
            if let Reply::Error(e) = reply {
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
    if !program_available("redis-server", "--version") {
        println!("SKIPPED: redis-server is not installed (.ci/run installs it)");
        return Ok(());
    }
    let (_redis_server, mut redis) = start_redis().await?;
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await?;
    let mut dkv = RawConn::connect(cluster.resp_addr((leader + 1) % 3)).await?;
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
