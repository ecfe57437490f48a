//! The stream commands' generator for the difftest (issue 16).
//!
//! Ids: every XADD uses an explicit id (`ms-seq`) or `ms-*`, with `ms`
//! from a counter that grows through the run (sometimes an older or an
//! equal one, to meet Redis's "equal or smaller" error), so both servers
//! hold the same ids and every later command (XRANGE bounds, XDEL, XACK,
//! XCLAIM) names them exactly. `*` ids come from each server's clock and are
//! left to the unit tests (`kv::streams::tests`), which step the log's
//! clock. Times: idle and delivery times differ between the servers, so
//! XCLAIM/XAUTOCLAIM/XPENDING use a minimum idle time of 0 (always idle
//! enough) or a day (never), replies that carry times (XPENDING's extended
//! form, XINFO CONSUMERS, XINFO STREAM FULL) are compared by length, and
//! XINFO STREAM by length too (its `radix-tree-nodes` depends on Redis's
//! tree compression, which dkv estimates).

use std::cell::Cell;

use dkv_integration::rng::Rng;

use super::{b, cmd, exact, Check, Cmd};

thread_local! {
    /// The next id's milliseconds.
    static NEXT_MS: Cell<u64> = const { Cell::new(1) };
}

/// Starts the id counter again: every sequence (one seed's run on emptied
/// servers) generates from the same state, so generation is a pure function
/// of the seed and a seed replays alone.
pub(super) fn reset() {
    NEXT_MS.with(|next| next.set(1));
}

const STREAM_KEYS: &[&str] = &["st0", "st1", "st2", "k0"];
const GROUPS: &[&str] = &["g0", "g1", "nog"];
const CONSUMERS: &[&str] = &["c0", "c1", "c2"];

fn skey(r: &mut Rng) -> Vec<u8> {
    b(r.pick(STREAM_KEYS))
}

/// An id near the ones added so far (`ms-seq`, sometimes `ms` alone).
fn some_id(r: &mut Rng) -> String {
    let top = NEXT_MS.with(Cell::get);
    let ms = r.below(top as usize + 2);
    match r.below(5) {
        0 => ms.to_string(),
        _ => format!("{ms}-{}", r.below(3)),
    }
}

fn bound(r: &mut Rng, start: bool) -> String {
    match r.below(8) {
        0 => b_str(if start { "-" } else { "+" }),
        1 => format!("({}", some_id(r)),
        2 => b_str(r.pick(&["-", "+", "(-", "x", "(0-0"])),
        _ => some_id(r),
    }
}

fn b_str(s: &str) -> String {
    s.to_string()
}

fn new_id(r: &mut Rng) -> String {
    let ms = NEXT_MS.with(|n| {
        let ms = n.get();
        if !r.chance(10) {
            n.set(ms + 1 + r.below(3) as u64);
        }
        ms
    });
    match r.below(20) {
        0 => format!("{}-0", ms.saturating_sub(5)), // too small
        1 => "0-0".into(),
        2..=6 => format!("{ms}-*"),
        7 => b_str(r.pick(&["x", "-", "1-x"])),
        _ => format!("{ms}-{}", r.below(3)),
    }
}

fn trim_opts(r: &mut Rng, a: &mut Vec<Vec<u8>>) {
    let top = NEXT_MS.with(Cell::get) as usize;
    match r.below(4) {
        0 => a.extend([b("MAXLEN"), b(&r.below(150).to_string())]),
        1 => a.extend([b("MINID"), b(&r.below(top + 1).to_string())]),
        _ => {
            let strategy = r.pick(&["MAXLEN", "MINID"]);
            let op = r.pick(&["~", "=", "~"]);
            let n = if strategy == "MAXLEN" {
                r.below(250)
            } else {
                r.below(top + 1)
            };
            a.extend([b(strategy), b(op), b(&n.to_string())]);
            if op == "~" && r.chance(30) {
                a.extend([b("LIMIT"), b(r.pick(&["0", "50", "100", "1000", "-1"]))]);
            }
        }
    }
}

fn ids(r: &mut Rng, a: &mut Vec<Vec<u8>>, n: usize) {
    for _ in 0..n {
        a.push(b(&some_id(r)));
    }
}

/// One stream command.
pub(crate) fn gen_streams(r: &mut Rng) -> Cmd {
    let k = skey(r);
    let group = b(r.pick(GROUPS));
    let consumer = b(r.pick(CONSUMERS));
    match r.below(40) {
        0..=11 => {
            let mut a = vec![b("XADD"), k];
            if r.chance(5) {
                a.push(b("NOMKSTREAM"));
            }
            if r.chance(20) {
                trim_opts(r, &mut a);
            }
            a.push(b(&new_id(r)));
            for _ in 0..1 + r.below(2) {
                a.push(b(r.pick(&["f", "g", "h"])));
                a.push(b(r.pick(&["1", "v", "abc", ""])));
            }
            if r.chance(3) {
                a.pop();
            }
            exact(a)
        }
        12 | 13 => {
            let name = r.pick(&["XRANGE", "XREVRANGE"]);
            let (s, e) = (bound(r, true), bound(r, false));
            let mut a = if name == "XRANGE" {
                vec![b(name), k, b(&s), b(&e)]
            } else {
                vec![b(name), k, b(&e), b(&s)]
            };
            if r.chance(50) {
                a.extend([b("COUNT"), b(r.pick(&["0", "1", "3", "-1", "x"]))]);
            }
            exact(a)
        }
        14 => exact(vec![b("XLEN"), k]),
        15 => {
            let mut a = vec![b("XDEL"), k];
            let n = 1 + r.below(3);
            ids(r, &mut a, n);
            exact(a)
        }
        16 => {
            let mut a = vec![b("XTRIM"), k];
            trim_opts(r, &mut a);
            exact(a)
        }
        17 | 18 => {
            let mut a = vec![b("XREAD")];
            if r.chance(40) {
                a.extend([b("COUNT"), b(r.pick(&["1", "2", "0"]))]);
            }
            a.push(b("STREAMS"));
            let n = 1 + r.below(2);
            let keys: Vec<Vec<u8>> = (0..n).map(|_| skey(r)).collect();
            a.extend(keys);
            for _ in 0..n {
                let id = if r.chance(20) { b_str("$") } else { some_id(r) };
                a.push(b(&id));
            }
            exact(a)
        }
        19..=21 => {
            let mut a = vec![b("XREADGROUP"), b("GROUP"), group, consumer];
            if r.chance(50) {
                a.extend([b("COUNT"), b(r.pick(&["1", "2", "5"]))]);
            }
            if r.chance(10) {
                a.push(b("NOACK"));
            }
            a.extend([b("STREAMS"), k]);
            a.push(b(&match r.below(6) {
                0 => some_id(r),
                1 => b_str(r.pick(&["0", "$"])),
                _ => b_str(">"),
            }));
            exact(a)
        }
        22 | 23 => {
            let mut a = vec![b("XACK"), k, group];
            let n = 1 + r.below(3);
            ids(r, &mut a, n);
            exact(a)
        }
        24 => exact(vec![b("XPENDING"), k, group]),
        25 => {
            let mut a = vec![b("XPENDING"), k, group];
            if r.chance(30) {
                a.extend([b("IDLE"), b(r.pick(&["0", "86400000"]))]);
            }
            a.extend([b(&bound(r, true)), b(&bound(r, false))]);
            a.push(b(r.pick(&["10", "1", "0"])));
            if r.chance(40) {
                a.push(consumer);
            }
            cmd(a, Check::SameLength)
        }
        26 | 27 => {
            let mut a = vec![b("XCLAIM"), k, group, consumer];
            a.push(b(r.pick(&["0", "86400000", "x"])));
            let n = 1 + r.below(3);
            ids(r, &mut a, n);
            for _ in 0..r.below(3) {
                match r.below(6) {
                    0 => a.push(b("FORCE")),
                    1 => a.push(b("JUSTID")),
                    2 => a.extend([b("RETRYCOUNT"), b(r.pick(&["3", "x"]))]),
                    3 => a.extend([b("LASTID"), b(&some_id(r))]),
                    4 => a.extend([b("IDLE"), b("0")]),
                    _ => a.push(b("BOGUS")),
                }
            }
            exact(a)
        }
        28 => {
            let mut a = vec![b("XAUTOCLAIM"), k, group, consumer];
            a.push(b(r.pick(&["0", "86400000", "x"])));
            a.push(b(&bound(r, true)));
            if r.chance(50) {
                a.extend([b("COUNT"), b(r.pick(&["1", "3", "100", "0"]))]);
            }
            if r.chance(30) {
                a.push(b("JUSTID"));
            }
            exact(a)
        }
        29..=32 => {
            let sub = r.pick(&[
                "CREATE",
                "CREATE",
                "SETID",
                "DESTROY",
                "CREATECONSUMER",
                "DELCONSUMER",
            ]);
            let mut a = vec![b("XGROUP"), b(sub), k, group];
            match sub {
                "CREATE" | "SETID" => {
                    a.push(b(&if r.chance(30) { b_str("$") } else { some_id(r) }));
                    if sub == "CREATE" && r.chance(40) {
                        a.push(b("MKSTREAM"));
                    }
                    if r.chance(20) {
                        a.extend([b("ENTRIESREAD"), b(r.pick(&["0", "3", "-1", "-2"]))]);
                    }
                }
                "CREATECONSUMER" | "DELCONSUMER" => a.push(consumer),
                _ => {}
            }
            exact(a)
        }
        33 => cmd(vec![b("XINFO"), b("STREAM"), k], Check::SameLength),
        34 => exact(vec![b("XINFO"), b("GROUPS"), k]),
        35 => cmd(
            vec![b("XINFO"), b("CONSUMERS"), k, group],
            Check::SameLength,
        ),
        36 => cmd(
            vec![b("XINFO"), b("STREAM"), k, b("FULL"), b("COUNT"), b("5")],
            Check::SameLength,
        ),
        37 => {
            let mut a = vec![b("XSETID"), k, b(&some_id(r))];
            if r.chance(30) {
                a.extend([b("ENTRIESADDED"), b(r.pick(&["1000", "0", "-1"]))]);
            }
            if r.chance(20) {
                a.extend([b("MAXDELETEDID"), b(&some_id(r))]);
            }
            exact(a)
        }
        _ => exact(vec![b(r.pick(&["TYPE", "EXISTS", "DEL"])), k]),
    }
}
