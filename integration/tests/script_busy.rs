//! Runaway scripts on real nodes: Redis 7.0's `BUSY` while a script has run
//! longer than `busy-reply-threshold`, and `SCRIPT KILL` of a read-only one.
//!
//! On a 3-node cluster, one follower gets `CONFIG SET busy-reply-threshold
//! 50`; a connection there runs `EVALSHA_RO` of a script that loops until
//! it is killed (each turn builds a 64 KiB string, so its instruction budget
//! would last minutes); a second connection polls `PING` until it answers
//! `BUSY` (Redis's text), and sees `GET` refused and `MULTI`/`DISCARD`
//! allowed, as Redis allows them; the leader serves meanwhile (only the
//! follower is busy); a third connection's `SCRIPT KILL` stops the script,
//! whose caller gets Redis's kill error with the script's line, and the
//! follower serves again (`SCRIPT KILL` then answers `NOTBUSY`).
//!
//! No wall-clock assertion: the test waits for `BUSY` by polling (bounded
//! in count) and for the kill by the reply; every read has a timeout.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use dkv_integration::resp::{RawConn, Reply};
use dkv_integration::Cluster;

const ELECTION_BUDGET: Duration = Duration::from_secs(30);
/// PINGs sent while waiting for the follower to report `BUSY`.
const BUSY_POLLS: usize = 1500;
/// Pause between two of them.
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// The killed script's reply.
const KILLED_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Loops until killed: the instruction budget (100M) would take minutes.
const LOOP: &str = "local n = 0\nwhile true do\n  n = n + #string.rep('x', 65536)\nend";

const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";

fn error(text: &str) -> Reply {
    Reply::Error(text.to_string())
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

fn simple(text: &str) -> Reply {
    Reply::Simple(text.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_kill_stops_a_busy_read_only_script_while_others_get_busy() -> Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let leader = cluster.wait_for_leader(ELECTION_BUDGET).await?;
    let follower = (leader + 1) % 3;
    let addr = cluster.resp_addr(follower);

    let mut killer = RawConn::connect(addr).await?;
    ensure!(
        killer.command(&[b"SCRIPT", b"KILL"]).await? == error(NOTBUSY),
        "SCRIPT KILL with nothing running"
    );
    ensure!(
        killer
            .command(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"])
            .await?
            == simple("OK")
    );
    ensure!(
        killer
            .command(&[b"CONFIG", b"GET", b"lua-time-limit"])
            .await?
            == Reply::Array(Some(vec![bulk("lua-time-limit"), bulk("50")]))
    );
    let Reply::Bulk(Some(sha)) = killer
        .command(&[b"SCRIPT", b"LOAD", LOOP.as_bytes()])
        .await?
    else {
        bail!("SCRIPT LOAD did not answer a sha");
    };
    // SCRIPT LOAD answered after the follower forwarded it; the follower
    // applies it soon after.
    let mut cached = false;
    for _ in 0..BUSY_POLLS {
        let exists = killer.command(&[b"SCRIPT", b"EXISTS", &sha]).await?;
        if exists == Reply::Array(Some(vec![Reply::Integer(1)])) {
            cached = true;
            break;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    ensure!(cached, "the follower never cached the script");

    let mut runner = RawConn::connect(addr).await?;
    runner
        .send(&dkv_integration::resp::encode(&[b"EVALSHA_RO", &sha, b"0"]))
        .await?;

    let mut watcher = RawConn::connect(addr).await?;
    let mut busy = false;
    for _ in 0..BUSY_POLLS {
        match watcher.command(&[b"PING"]).await? {
            Reply::Simple(pong) if pong == "PONG" => tokio::time::sleep(POLL_PAUSE).await,
            reply if reply == error(BUSY) => {
                busy = true;
                break;
            }
            other => bail!("PING answered {other:?}"),
        }
    }
    ensure!(busy, "the follower never answered BUSY");
    ensure!(watcher.command(&[b"GET", b"x"]).await? == error(BUSY));
    ensure!(
        watcher
            .command(&[b"CONFIG", b"GET", b"busy-reply-threshold"])
            .await?
            == error(BUSY)
    );
    // Allowed while busy, as in Redis (`allow_busy`); what MULTI queues is
    // refused.
    ensure!(watcher.command(&[b"MULTI"]).await? == simple("OK"));
    ensure!(watcher.command(&[b"INCR", b"x"]).await? == error(BUSY));
    ensure!(watcher.command(&[b"DISCARD"]).await? == simple("OK"));

    // Only this node is busy.
    let mut on_leader = RawConn::connect(cluster.resp_addr(leader)).await?;
    ensure!(on_leader.command(&[b"PING"]).await? == simple("PONG"));
    ensure!(on_leader.command(&[b"GET", b"x"]).await? == Reply::Bulk(None));

    ensure!(killer.command(&[b"SCRIPT", b"KILL"]).await? == simple("OK"));
    let reply = runner
        .read_reply(KILLED_REPLY_TIMEOUT)
        .await
        .context("the killed script's reply")?;
    let sha = String::from_utf8_lossy(&sha).into_owned();
    ensure!(
        reply
            == error(&format!(
                "ERR Script killed by user with SCRIPT KILL... script: {sha}, on @user_script:3."
            )),
        "the killed script answered {reply:?}"
    );
    ensure!(watcher.command(&[b"PING"]).await? == simple("PONG"));
    ensure!(runner.command(&[b"GET", b"x"]).await? == Reply::Bulk(None));
    ensure!(killer.command(&[b"SCRIPT", b"KILL"]).await? == error(NOTBUSY));

    // The same for a function: FCALL_RO of a no-writes function that loops
    // is stopped by FUNCTION KILL (SCRIPT KILL answers the function family's
    // BUSY text); the caller's error names the function (Redis 7.0.15's
    // texts, its kill error still says SCRIPT KILL).
    ensure!(
        killer
            .command(&[b"FUNCTION", b"LOAD", SPIN_LIBRARY.as_bytes()])
            .await?
            == bulk("spin")
    );
    let mut loaded = false;
    for _ in 0..BUSY_POLLS {
        let list = killer
            .command(&[b"FUNCTION", b"LIST", b"LIBRARYNAME", b"spin"])
            .await?;
        if matches!(&list, Reply::Array(Some(libs)) if !libs.is_empty()) {
            loaded = true;
            break;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    ensure!(loaded, "the follower never loaded the library");
    runner
        .send(&dkv_integration::resp::encode(&[
            b"FCALL_RO",
            b"spin",
            b"0",
        ]))
        .await?;
    let mut busy = false;
    for _ in 0..BUSY_POLLS {
        match watcher.command(&[b"PING"]).await? {
            Reply::Simple(pong) if pong == "PONG" => tokio::time::sleep(POLL_PAUSE).await,
            reply if reply == error(FUNCTION_BUSY) => {
                busy = true;
                break;
            }
            other => bail!("PING answered {other:?} while a function ran"),
        }
    }
    ensure!(busy, "the follower never answered BUSY for the function");
    ensure!(killer.command(&[b"SCRIPT", b"KILL"]).await? == error(FUNCTION_BUSY));
    ensure!(killer.command(&[b"FUNCTION", b"KILL"]).await? == simple("OK"));
    let reply = runner
        .read_reply(KILLED_REPLY_TIMEOUT)
        .await
        .context("the killed function's reply")?;
    ensure!(
        reply
            == error(
                "ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:5."
            ),
        "the killed function answered {reply:?}"
    );
    ensure!(killer.command(&[b"FUNCTION", b"KILL"]).await? == error(NOTBUSY));
    cluster.shutdown();
    Ok(())
}

/// A library whose no-writes function loops until killed (its body on lines
/// 3 to 6, so the kill lands on line 5 as in Redis).
const SPIN_LIBRARY: &str = "#!lua name=spin\nredis.register_function{function_name='spin', callback=function(keys, args)\n  local n = 0\n  while true do\n    n = n + #string.rep('x', 65536)\n  end\nend, flags={'no-writes'}}";

const FUNCTION_BUSY: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
