//! Differential test of scripting (issue 14): seeded random Lua scripts are
//! sent to a real `redis-server` and to a 3-node dkv cluster, and every reply
//! is compared byte for byte as it arrives on the wire (RESP2, and RESP3 after
//! `HELLO 3`), errors included.
//!
//! The generator writes scripts that call commands of every type through
//! `redis.call` and `redis.pcall` (on declared keys and on literal ones),
//! return every kind of Lua value (integers, floats that Redis truncates,
//! strings, booleans, nil, tables cut at a nil, nested tables, status and
//! error tables, RESP3 maps, sets, doubles and big numbers after
//! `redis.setresp(3)`), raise errors (Lua runtime errors, `error()` with a
//! string or a table, failing `redis.call`s, bad arguments to `redis.call`),
//! and use `cjson`, `cmsgpack`, `bit`, `struct`, `redis.sha1hex` and
//! `math.random`. Calls go through `EVAL`, `EVALSHA` (of scripts seen before
//! and unknown ones), `EVAL_RO`/`EVALSHA_RO` (read-only scripts, and writes
//! they must refuse), `SCRIPT LOAD/EXISTS`, with good and bad `numkeys`.
//! Every 100 calls `DEBUG DIGEST` of both servers is compared: the writes
//! scripts made are the same.
//!
//! Functions: three calls in ten are `FUNCTION LOAD [REPLACE]` of generated
//! libraries (one to three functions whose bodies are generated scripts,
//! some `no-writes`, with flags and descriptions; and libraries that fail to
//! load), `FCALL`/`FCALL_RO` (by name in any case, unknown names, bad
//! `numkeys`), `FUNCTION LIST [WITHCODE] [LIBRARYNAME p]`, `DELETE`, `DUMP`,
//! `RESTORE` of redis-server's last dump (each policy), `STATS`, `FLUSH`,
//! `HELP`, `KILL`. Redis lists libraries and functions (and dumps libraries)
//! in its hash order, which differs between two redis-servers: LIST replies
//! are compared with their arrays of libraries and of functions in byte
//! order, DUMP replies record by record in byte order when they differ
//! (then only the checksum over the order may differ), and when several
//! functions (or restored libraries) collide, any one may be named in the
//! `already exists` error, as Redis names the first in its hash order.
//! Bodies of `no-writes`
//! functions never use `math.random` (dkv serves their calls as reads).
//!
//! What is not generated, and why: `TIME` and `redis.call('TIME')`, TTLs and
//! expiries (the two servers' clocks differ); replies whose element order is
//! an encoding detail (SMEMBERS, HGETALL of a hashtable: scripts sort them
//! with `table.sort` first); `tostring` of tables and functions (addresses);
//! `collectgarbage` (heap sizes).
//!
//! `SCRIPT_DIFFTEST_SEEDS=a,b,c` and `SCRIPT_DIFFTEST_CALLS=n` (per seed)
//! change the run (`make script-difftest N=… SEED=…`).
//! `SCRIPT_DIFFTEST_AGAINST=redis` runs the comparison against a second
//! `redis-server` instead of dkv: it checks the generator itself (any
//! difference there is a script whose outcome is not a function of its input).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dkv_integration::frames::{frame_len, FrameConn as Conn};
use dkv_integration::redis_server::{start_redis, RedisServer};
use dkv_integration::rng::Rng;
use dkv_integration::{program_available, Cluster};

// The connection that returns each reply's raw bytes is the shared
// `dkv_integration::frames::FrameConn`.

// ---- the script generator ---------------------------------------------------

/// Keys passed as KEYS (and named literally, as scripts in the wild do).
const KEY_NAMES: &[&str] = &[
    "s:str", "s:num", "s:hash", "s:list", "s:set", "s:zset", "s:none",
];
const ARGS: &[&str] = &[
    "1",
    "-3",
    "10",
    "0",
    "x",
    "hello",
    "2.5",
    "",
    "abc",
    "9223372036854775807",
    "-0",
    "1e3",
    " 5",
    "bin\0ary",
];

/// A Lua string literal for `s` (every byte escaped as Lua 5.1 reads it).
fn lua_str(s: &str) -> String {
    let mut out = String::from("'");
    for b in s.bytes() {
        match b {
            b'\'' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            // Three digits always: a digit after the escape stays itself.
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('\'');
    out
}

struct Gen<'a> {
    r: &'a mut Rng,
    /// How many KEYS the script is called with.
    nkeys: usize,
    /// How many ARGV.
    nargs: usize,
    /// Whether `math.random` may be used: only in calls that may write. Redis
    /// 7.0 keeps one generator per process that every script advances; dkv
    /// replicates it and advances it in write calls only, so a read-only
    /// call's numbers and the generator after it are not comparable.
    random_ok: bool,
}

impl Gen<'_> {
    /// A key: `KEYS[i]` when there are keys, else a literal name.
    fn key(&mut self) -> String {
        if self.nkeys > 0 && self.r.chance(70) {
            format!("KEYS[{}]", 1 + self.r.below(self.nkeys))
        } else {
            lua_str(self.r.pick(KEY_NAMES))
        }
    }

    /// A typed key: literal names whose type the generator mostly keeps.
    fn key_of(&mut self, name: &str) -> String {
        if self.r.chance(93) {
            lua_str(name)
        } else {
            self.key()
        }
    }

    /// An argument: `ARGV[i]`, a literal string, or a number.
    fn arg(&mut self) -> String {
        match self.r.below(10) {
            0..=3 if self.nargs > 0 => format!("ARGV[{}]", 1 + self.r.below(self.nargs)),
            0..=5 => lua_str(self.r.pick(ARGS)),
            6 => format!("{}", self.r.below(200) as i64 - 100),
            7 => self
                .r
                .pick(&["1.5", "-2.25", "0.1", "3e2", "1/3"])
                .to_string(),
            _ => lua_str(self.r.pick(&["a", "b", "c", "m1", "m2", "f1", "f2"])),
        }
    }

    fn member(&mut self) -> String {
        lua_str(self.r.pick(&["a", "b", "c", "m1", "m2", "10", "-1", ""]))
    }

    fn int(&mut self) -> String {
        self.r
            .pick(&["0", "1", "2", "-1", "-2", "5", "100", "'3'", "'x'", "2.7"])
            .to_string()
    }

    /// A command call as a Lua expression (`redis.call` or `redis.pcall`).
    fn command(&mut self, writes: bool) -> String {
        let call = if self.r.chance(30) {
            "redis.pcall"
        } else {
            "redis.call"
        };
        let args = if writes && self.r.chance(50) {
            self.write_args()
        } else {
            self.read_args()
        };
        format!("{call}({args})")
    }

    fn write_args(&mut self) -> String {
        match self.r.below(16) {
            0 => format!("'SET', {}, {}", self.key_of("s:str"), self.arg()),
            1 => format!("'INCRBY', {}, {}", self.key_of("s:num"), self.int()),
            2 => format!("'DEL', {}", self.key()),
            3 => format!(
                "'HSET', {}, {}, {}",
                self.key_of("s:hash"),
                self.member(),
                self.arg()
            ),
            4 => format!(
                "'RPUSH', {}, {}, {}",
                self.key_of("s:list"),
                self.arg(),
                self.arg()
            ),
            5 => format!("'LPOP', {}", self.key_of("s:list")),
            6 => format!("'SADD', {}, {}", self.key_of("s:set"), self.member()),
            7 => format!(
                "'ZADD', {}, {}, {}",
                self.key_of("s:zset"),
                self.int(),
                self.member()
            ),
            8 => format!("'APPEND', {}, {}", self.key_of("s:str"), self.arg()),
            9 => format!(
                "'ZINCRBY', {}, {}, {}",
                self.key_of("s:zset"),
                self.arg(),
                self.member()
            ),
            10 => format!("'HINCRBY', {}, 'n', {}", self.key_of("s:hash"), self.int()),
            11 => format!("'SREM', {}, {}", self.key_of("s:set"), self.member()),
            12 => format!("'INCRBYFLOAT', {}, {}", self.key_of("s:num"), self.arg()),
            13 => format!(
                "'MSET', {}, {}, {}, {}",
                self.key_of("s:str"),
                self.arg(),
                self.key_of("s:num"),
                self.int()
            ),
            14 => format!("'LPUSH', {}, {}", self.key_of("s:list"), self.arg()),
            _ => format!(
                "'SETRANGE', {}, {}, {}",
                self.key_of("s:str"),
                self.int(),
                self.arg()
            ),
        }
    }

    fn read_args(&mut self) -> String {
        match self.r.below(18) {
            0 => format!("'GET', {}", self.key_of("s:str")),
            1 => format!("'GET', {}", self.key_of("s:num")),
            2 => format!("'HGET', {}, {}", self.key_of("s:hash"), self.member()),
            3 => format!(
                "'LRANGE', {}, {}, {}",
                self.key_of("s:list"),
                self.int(),
                self.int()
            ),
            4 => format!("'SCARD', {}", self.key_of("s:set")),
            5 => format!("'ZRANGE', {}, 0, -1, 'WITHSCORES'", self.key_of("s:zset")),
            6 => format!("'TYPE', {}", self.key()),
            7 => format!("'EXISTS', {}, {}", self.key(), self.key()),
            8 => format!("'ZSCORE', {}, {}", self.key_of("s:zset"), self.member()),
            9 => format!("'SISMEMBER', {}, {}", self.key_of("s:set"), self.member()),
            10 => format!("'LLEN', {}", self.key_of("s:list")),
            11 => format!("'STRLEN', {}", self.key()),
            12 => format!("'HLEN', {}", self.key_of("s:hash")),
            13 => format!("'MGET', {}, {}", self.key(), self.key()),
            14 => "'PING'".to_string(),
            15 => format!("'ZRANK', {}, {}", self.key_of("s:zset"), self.member()),
            16 => format!("'LINDEX', {}, {}", self.key_of("s:list"), self.int()),
            _ => self.bad_call(),
        }
    }

    /// Calls Redis refuses, each with its own error text.
    fn bad_call(&mut self) -> String {
        self.r
            .pick(&[
                "'NOSUCHCOMMAND'",
                "'GET'",
                "'GET', 'a', 'b'",
                "'SET', 'k'",
                "'GET', {}",
                "'INCR', 's:str', 'extra'",
                "'SUBSCRIBE', 'ch'",
                "'EVAL', 'return 1', 0",
                "'MULTI'",
                "'ZADD', 's:zset', 'x', 'm'",
                "'GET', 1.5",
                "'LPUSH', 's:str', 'x'",
                "'HSET', 's:hash', 'f'",
            ])
            .to_string()
    }

    /// A value expression of any Lua type Redis converts.
    fn value(&mut self, depth: usize, writes: bool) -> String {
        match self.r.below(if depth > 1 { 14 } else { 20 }) {
            0 => self.int(),
            1 => self
                .r
                .pick(&["3.99", "-3.99", "0.5", "-0.5", "1e10", "2^53"])
                .to_string(),
            2 => lua_str(self.r.pick(ARGS)),
            3 => self.r.pick(&["true", "false", "nil"]).to_string(),
            4 | 5 => self.command(writes),
            6 => format!("ARGV[{}]", 1 + self.r.below(self.nargs + 1)),
            7 => format!("KEYS[{}]", 1 + self.r.below(self.nkeys + 1)),
            8 => self.library(),
            9 => self
                .r
                .pick(&[
                    "redis.status_reply('FINE')",
                    "redis.error_reply('MYERR something failed')",
                    "redis.error_reply('no code here')",
                    "{ok='STATUS'}",
                    "{err='CUSTOM it broke'}",
                    "{err='plain'}",
                    "redis.sha1hex('')",
                    "redis.sha1hex(ARGV[1] or 'x')",
                    "#KEYS + #ARGV",
                ])
                .to_string(),
            10 if self.random_ok => self
                .r
                .pick(&[
                    "math.random(1, 1000)",
                    "math.random(10)",
                    "string.format('%.6f', math.random())",
                    "(function() math.randomseed(7); return math.random(100) end)()",
                ])
                .to_string(),
            10 => format!("tostring({})", self.int()),
            11 => format!("type({})", self.command(false)),
            12 => format!("({}) and 1 or 0", self.command(false)),
            13 => format!("#({} or '')", lua_str(self.r.pick(ARGS))),
            _ => {
                // A table: an array (maybe with a nil hole), or a mixed one.
                let n = self.r.below(4);
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value(depth + 1, writes));
                }
                if self.r.chance(30) {
                    items.push(format!("x={}", self.int()));
                }
                format!("{{{}}}", items.join(", "))
            }
        }
    }

    /// A call of one of the Lua libraries Redis loads.
    fn library(&mut self) -> String {
        self.r
            .pick(&[
                "cjson.encode({1, 2, 'three', {a=false}})",
                "cjson.encode({x={1.5, -2, 'y'}})",
                "cjson.encode('quote\" and \\\\ slash')",
                "cjson.encode(cjson.decode('[1,2,{\"a\":null}]'))",
                "cjson.decode('{\"n\": 12.5}').n * 2",
                "cjson.decode('[\"a\",\"b\"]')[2]",
                "cjson.decode('not json')",
                "cjson.encode({})",
                "cjson.decode('[1,2,3]')[3] == 3 and 'yes' or 'no'",
                "cjson.decode('{\"a\":null}').a == cjson.null and 1 or 0",
                "cmsgpack.pack(1, -1, 'abc', {1, 2}, 3.5)",
                "cmsgpack.pack({a=1})",
                "{cmsgpack.unpack(cmsgpack.pack(1, 'two', {3}))}",
                "cmsgpack.unpack(cmsgpack.pack(2^40))",
                "cmsgpack.unpack('\\204')",
                "bit.band(255, 4097)",
                "bit.bor(1, 2, 4)",
                "bit.bxor(-1, 5)",
                "bit.lshift(1, 31)",
                "bit.rshift(-1, 28)",
                "bit.arshift(-256, 4)",
                "bit.tohex(65535)",
                "bit.tohex(-1, -4)",
                "bit.bnot(0)",
                "bit.tobit(2^32 + 7)",
                "bit.rol(1, 33)",
                "bit.bswap(0x12345678)",
                "struct.pack('>I2', 258)",
                "struct.pack('<i4', -2)",
                "{struct.unpack('>I2', 'ab')}",
                "struct.size('i4d')",
                "struct.pack('z', 'str')",
                "struct.unpack('>q', 'short')",
                "string.rep('ab', 3)",
                "string.format('%5.2f|%d|%s', 3.14159, 42, 'x')",
                "tonumber('0x10')",
                "table.concat({'a', 'b', 1}, '-')",
                "string.byte('A')",
                "string.upper('mixed Case')",
                "select('#', 1, 2, nil)",
                "loadstring('return 1')",
                "math.floor(-3.5)",
                "math.fmod(7, 3)",
                "string.find('hello world', 'o w')",
                "string.gsub('hello', 'l', 'L')",
            ])
            .to_string()
    }

    /// A statement of the script body.
    fn statement(&mut self, writes: bool) -> String {
        match self.r.below(12) {
            0..=4 => format!("r[#r + 1] = {}", self.value(0, writes)),
            5..=7 => self.command(writes),
            8 => format!("local t = {}; r[#r + 1] = type(t)", self.command(writes)),
            9 => self
                .r
                .pick(&[
                    "error('boom')",
                    "error({err='TABLEERR from a table'})",
                    "error()",
                    "local n = nil; r[#r + 1] = n + 1",
                    "r[#r + 1] = undefined_global",
                    "newglobal = 1",
                    "r[#r + 1] = ('x'):rep(3)",
                    "local ok, e = pcall(function() error('inner') end); r[#r + 1] = e",
                    "local ok, e = pcall(redis.call, 'INCR', 's:str'); r[#r + 1] = ok",
                    "redis.setresp(3)",
                    "redis.setresp(2)",
                    "redis.setresp(4)",
                    "redis.set_repl(redis.REPL_ALL)",
                    "r[#r + 1] = redis.REDIS_VERSION_NUM > 0 and 1 or 0",
                    "redis.log(redis.LOG_NOTICE, 'from the difftest')",
                    "r[#r + 1] = redis.replicate_commands()",
                ])
                .to_string(),
            10 => {
                // Sorted copies of replies whose order is an encoding detail.
                let (cmd, key) = match self.r.below(3) {
                    0 => ("SMEMBERS", "s:set"),
                    1 => ("HKEYS", "s:hash"),
                    _ => ("HVALS", "s:hash"),
                };
                // Under RESP3 SMEMBERS is a `{set=...}` table, whose
                // `pairs` order is Lua's hash order: Redis seeds that per
                // process, so it differs between two redis-servers too.
                format!(
                    "local t = redis.pcall('{cmd}', '{key}'); if t.set then local a = {{}}; for m in pairs(t.set) do a[#a + 1] = m end; t = a end; if t.err == nil then table.sort(t) end; r[#r + 1] = t"
                )
            }
            _ => format!(
                "if {} then r[#r + 1] = 'yes' else r[#r + 1] = 'no' end",
                self.command(false)
            ),
        }
    }

    /// A whole script: statements, then a return of one of their results
    /// or of another value.
    fn script(&mut self, writes: bool) -> String {
        let mut lines = Vec::new();
        if self.r.chance(15) {
            lines.push("redis.setresp(3)".to_string());
        }
        lines.push("local r = {}".to_string());
        for _ in 0..1 + self.r.below(4) {
            lines.push(self.statement(writes));
        }
        let ret = match self.r.below(6) {
            0 | 1 => "r".to_string(),
            2 => "r[1]".to_string(),
            3 => "r[#r]".to_string(),
            4 => self.value(0, writes),
            _ => self
                .r
                .pick(&[
                    "{map={a=1}}",
                    "{set={x=true}}",
                    "{double=3.5}",
                    "{double='1.25'}",
                    "{big_number='123456789012345678901234567890'}",
                    "{verbatim_string={format='txt', string='hello'}}",
                    "true",
                    "false",
                    "{1, nil, 3}",
                    "{{ok='nested'}, {err='NESTED error'}}",
                ])
                .to_string(),
        };
        lines.push(format!("return {ret}"));
        lines.join("\n")
    }
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Library names the function calls use (few, so loads collide).
const LIB_NAMES: &[&str] = &["la", "lb", "lc"];
/// Function names (few, so names collide between libraries).
const FN_NAMES: &[&str] = &["fa", "fb", "fc", "fd", "fe"];
/// What `FUNCTION RESTORE` sends in place of this argument: the payload of
/// redis-server's last `FUNCTION DUMP` (the generator cannot know it).
const LAST_DUMP: &[u8] = b"<last FUNCTION DUMP>";

/// A library: one to three functions whose bodies are generated scripts
/// (the callback's parameters are named KEYS and ARGV, so a body reads as
/// an EVAL script), some `no-writes` (their bodies read only and never use
/// `math.random`: dkv serves them as reads), or a library that fails to load.
fn gen_library(r: &mut Rng) -> String {
    let name = r.pick(LIB_NAMES);
    if r.chance(8) {
        return r
            .pick(&[
                "#!lua name=la\nlocal x = 1",
                "#!lua name=lb\nredis.register_function('fa')",
                "#!lua name=lc\nlocal s = string.len('x')",
                "#!lua name=la\nredis.call('ping')",
                "#!lua name=bad-name\nredis.register_function('fa', function() return 1 end)",
                "#!lua\nreturn 1",
                "#!lua name=lb\nredis.register_function{function_name='fb', callback=function() return 1 end, flags={'nope'}}",
                "#!lua name=lc\nredis.register_function('f-c', function() return 1 end)",
                "#!lua name=la\nlocal x = ",
                "no shebang",
            ])
            .to_string();
    }
    let mut code = format!("#!lua name={name}\n");
    let mut used = Vec::new();
    for _ in 0..1 + r.below(3) {
        // Mostly names of this library's own (`la_fa`), sometimes shared
        // ones, so loads collide now and then.
        let f = if r.chance(70) {
            format!("{name}_{}", r.pick(FN_NAMES))
        } else {
            r.pick(FN_NAMES).to_string()
        };
        if used.contains(&f) && r.chance(80) {
            continue;
        }
        used.push(f.clone());
        let no_writes = r.chance(40);
        let (nkeys, nargs) = (r.below(3), r.below(3));
        let mut g = Gen {
            r,
            nkeys,
            nargs,
            random_ok: !no_writes,
        };
        let body = g.script(!no_writes);
        if no_writes || r.chance(20) {
            let flags = if no_writes {
                r.pick(&["'no-writes'", "'no-writes', 'allow-oom'", "'NO-WRITES'"])
            } else {
                r.pick(&["'allow-oom'", "'allow-stale'", ""])
            };
            let description = r.pick(&["", ", description='counts things'", ", description=7"]);
            code.push_str(&format!(
                "redis.register_function{{function_name='{f}', callback=function(KEYS, ARGV)\n{body}\nend, flags={{{flags}}}{description}}}\n"
            ));
        } else {
            code.push_str(&format!(
                "redis.register_function('{f}', function(KEYS, ARGV)\n{body}\nend)\n"
            ));
        }
    }
    code
}

/// A function command: FUNCTION LOAD/LIST/DELETE/DUMP/RESTORE/STATS/FLUSH,
/// FCALL, FCALL_RO.
fn gen_function_call(r: &mut Rng) -> Vec<Vec<u8>> {
    let words = |w: &[&str]| w.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    match r.below(40) {
        0..=7 => {
            let mut cmd = words(&["FUNCTION", "LOAD"]);
            if r.chance(60) {
                cmd.push(
                    r.pick(&["REPLACE", "replace", "REPLACE", "bogus"])
                        .as_bytes()
                        .to_vec(),
                );
            }
            cmd.push(gen_library(r).into_bytes());
            cmd
        }
        8..=10 => {
            let mut cmd = words(&["FUNCTION", "LIST"]);
            if r.chance(50) {
                cmd.push(b"WITHCODE".to_vec());
            }
            if r.chance(40) {
                cmd.push(b"LIBRARYNAME".to_vec());
                cmd.push(
                    r.pick(&["l*", "la", "LB", "*c", "x*", "l?"])
                        .as_bytes()
                        .to_vec(),
                );
            }
            if r.chance(5) {
                cmd.push(r.pick(&["LIBRARYNAME", "bogus"]).as_bytes().to_vec());
            }
            cmd
        }
        11 | 12 => words(&[
            "FUNCTION",
            "DELETE",
            r.pick(&["la", "lb", "lc", "LA", "zz"]),
        ]),
        13 | 14 => words(&["FUNCTION", "DUMP"]),
        15 | 16 => {
            let mut cmd = words(&["FUNCTION", "RESTORE"]);
            cmd.push(LAST_DUMP.to_vec());
            if r.chance(70) {
                cmd.push(
                    r.pick(&["APPEND", "REPLACE", "FLUSH", "flush", "bogus"])
                        .as_bytes()
                        .to_vec(),
                );
            }
            cmd
        }
        17 => words(&["FUNCTION", "STATS"]),
        18 => words(&[
            "FUNCTION",
            r.pick(&["FLUSH", "FLUSH", "HELP", "KILL", "NOPE"]),
        ]),
        _ => {
            let verb = if r.chance(25) { "FCALL_RO" } else { "FCALL" };
            let f = r.pick(FN_NAMES);
            let own = format!("{}_{f}", r.pick(LIB_NAMES));
            let name = match r.below(12) {
                0 => "nosuch".to_string(),
                1 => own.to_ascii_uppercase(),
                2..=4 => f.to_string(),
                _ => own,
            };
            let nkeys = r.below(3);
            let nargs = r.below(3);
            let numkeys = if r.chance(4) {
                r.pick(&["-1", "x", "99"]).to_string()
            } else {
                nkeys.to_string()
            };
            let mut cmd = vec![
                verb.as_bytes().to_vec(),
                name.into_bytes(),
                numkeys.into_bytes(),
            ];
            for _ in 0..nkeys {
                cmd.push(r.pick(KEY_NAMES).as_bytes().to_vec());
            }
            for _ in 0..nargs {
                cmd.push(r.pick(ARGS).as_bytes().to_vec());
            }
            cmd
        }
    }
}

/// One generated call: the command to send to both servers. `seen` keeps
/// the sha of every script sent before and whether it was read-only.
fn gen_call(r: &mut Rng, seen: &mut Vec<(String, bool)>) -> Vec<Vec<u8>> {
    if r.chance(30) {
        return gen_function_call(r);
    }
    let nkeys = r.below(3);
    let nargs = r.below(3);
    let read_only = r.chance(20);
    let mut g = Gen {
        r,
        nkeys,
        nargs,
        random_ok: !read_only,
    };
    let body = if read_only && g.r.chance(80) {
        g.script(false)
    } else {
        g.script(!read_only)
    };
    let sha = sha1_hex(body.as_bytes());
    let mut keys_args: Vec<Vec<u8>> = Vec::new();
    for _ in 0..nkeys {
        keys_args.push(r.pick(KEY_NAMES).as_bytes().to_vec());
    }
    for _ in 0..nargs {
        keys_args.push(r.pick(ARGS).as_bytes().to_vec());
    }
    let numkeys = if r.chance(3) {
        r.pick(&["-1", "x", "99", "1.5"]).to_string()
    } else {
        nkeys.to_string()
    };
    let (verb, script): (&str, Vec<u8>) = match r.below(20) {
        // A script seen before, by its sha.
        0..=3 if !seen.is_empty() => {
            let (old, old_ro) = seen[r.below(seen.len())].clone();
            let verb = if old_ro && r.chance(50) {
                "EVALSHA_RO"
            } else {
                "EVALSHA"
            };
            (verb, old.into_bytes())
        }
        4 => (
            "EVALSHA",
            b"ffffffffffffffffffffffffffffffffffffffff".to_vec(),
        ),
        5 => {
            seen.push((sha.clone(), read_only));
            return vec![b"SCRIPT".to_vec(), b"LOAD".to_vec(), body.into_bytes()];
        }
        6 => {
            let mut cmd = vec![b"SCRIPT".to_vec(), b"EXISTS".to_vec(), sha.into_bytes()];
            if let Some((old, _)) = seen.first() {
                cmd.push(old.clone().into_bytes());
            }
            return cmd;
        }
        _ => {
            seen.push((sha, read_only));
            let verb = if read_only { "EVAL_RO" } else { "EVAL" };
            (verb, body.into_bytes())
        }
    };
    let mut cmd = vec![verb.as_bytes().to_vec(), script, numkeys.into_bytes()];
    cmd.extend(keys_args);
    cmd
}

// ---- replies whose order is Redis's hash order ------------------------------

/// One RESP frame as a tree: its first line (with `\r\n`), a bulk's body
/// (with its `\r\n`), and an aggregate's elements.
struct Node {
    head: Vec<u8>,
    body: Vec<u8>,
    children: Vec<Node>,
}

impl Node {
    fn parse(buf: &[u8], at: usize) -> Result<(Node, usize)> {
        let len = frame_len(buf, at)?.context("incomplete frame")?;
        let nl = buf[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("no line")?;
        let head = buf[at..at + nl + 2].to_vec();
        let kind = buf[at];
        let mut node = Node {
            head,
            body: Vec::new(),
            children: Vec::new(),
        };
        let n: i64 = std::str::from_utf8(&buf[at + 1..at + nl])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut next = at + nl + 2;
        match kind {
            b'*' | b'~' | b'>' | b'%' | b'|' if n > 0 => {
                let count = if matches!(kind, b'%' | b'|') {
                    2 * n
                } else {
                    n
                };
                for _ in 0..count {
                    let (child, after) = Node::parse(buf, next)?;
                    node.children.push(child);
                    next = after;
                }
            }
            b'$' | b'!' | b'=' => {
                node.body = buf[next..at + len].to_vec();
                next = at + len;
            }
            _ => {}
        }
        Ok((node, next))
    }

    /// The frame again, every array of aggregates (libraries, a library's
    /// functions) in byte order: Redis lists them in hash order.
    fn sorted_bytes(&self) -> Vec<u8> {
        let mut children: Vec<Vec<u8>> = self.children.iter().map(Node::sorted_bytes).collect();
        let all_aggregates = !self.children.is_empty()
            && self
                .children
                .iter()
                .all(|c| matches!(c.head[0], b'*' | b'%' | b'~'));
        if self.head[0] == b'*' && all_aggregates {
            children.sort();
        }
        let mut out = self.head.clone();
        out.extend_from_slice(&self.body);
        for c in children {
            out.extend(c);
        }
        out
    }
}

/// `FUNCTION LIST`'s reply with libraries and functions in byte order.
fn sorted_list(reply: &[u8]) -> Vec<u8> {
    match Node::parse(reply, 0) {
        Ok((node, _)) => node.sorted_bytes(),
        Err(_) => reply.to_vec(),
    }
}

/// Skips one RDB string (any encoding) at `at`; where it ends.
fn skip_rdb_string(p: &[u8], at: usize) -> Option<usize> {
    fn len(p: &[u8], at: usize) -> Option<(u64, usize, bool)> {
        let first = *p.get(at)?;
        Some(match first >> 6 {
            0 => (u64::from(first & 0x3f), at + 1, false),
            1 => (
                (u64::from(first & 0x3f) << 8) | u64::from(*p.get(at + 1)?),
                at + 2,
                false,
            ),
            2 if first == 0x80 => {
                let b = p.get(at + 1..at + 5)?;
                (
                    u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                    at + 5,
                    false,
                )
            }
            3 => (u64::from(first & 0x3f), at + 1, true),
            _ => return None,
        })
    }
    let (n, after, encoded) = len(p, at)?;
    if !encoded {
        return Some(after + n as usize);
    }
    match n {
        0 => Some(after + 1),
        1 => Some(after + 2),
        2 => Some(after + 4),
        3 => {
            let (packed, after, _) = len(p, after)?;
            let (_, after, _) = len(p, after)?;
            Some(after + packed as usize)
        }
        _ => None,
    }
}

/// A `FUNCTION DUMP` reply as its libraries' records in byte order and the
/// RDB version: Redis writes the libraries in hash order (and the checksum
/// over that order), so two servers with the same libraries agree on this.
fn dump_parts(reply: &[u8]) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    let (node, _) = Node::parse(reply, 0).ok()?;
    let body = node.body.get(..node.body.len().checked_sub(2)?)?;
    let objects = body.get(..body.len().checked_sub(10)?)?;
    let mut parts = Vec::new();
    let mut at = 0;
    while at < objects.len() {
        let end = skip_rdb_string(objects, at + 1)?;
        parts.push(objects.get(at..end)?.to_vec());
        at = end;
    }
    parts.sort();
    Some((parts, body[objects.len()..objects.len() + 2].to_vec()))
}

/// Both replies say a function (or, from RESTORE, a library) already
/// exists: when several collide, Redis names the first in its hash order.
fn same_collision(a: &[u8], b: &[u8]) -> bool {
    let kind = |r: &[u8]| {
        let text = String::from_utf8_lossy(r);
        let collides = text.ends_with(" already exists\r\n") && !text.contains('\'');
        if collides && text.starts_with("-ERR Function ") {
            Some("function")
        } else if collides && text.starts_with("-ERR Library ") {
            Some("library")
        } else {
            None
        }
    };
    kind(a).is_some() && kind(a) == kind(b)
}

/// The bulk string inside a reply frame.
fn bulk_of(reply: &[u8]) -> Option<Vec<u8>> {
    let (node, _) = Node::parse(reply, 0).ok()?;
    (node.head[0] == b'$').then(|| node.body[..node.body.len().saturating_sub(2)].to_vec())
}

// ---- the run ----------------------------------------------------------------

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let s = String::from_utf8_lossy(a);
            if s.chars().count() > 400 {
                format!("{:?}…", s.chars().take(400).collect::<String>())
            } else {
                format!("{s:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The other side of the comparison: a dkv cluster, or (to check the
/// generator) a second redis-server. Fresh for each seed: the script
/// generator's `math.random` state is the server's own from its start.
enum Other {
    Dkv(Cluster),
    Redis(RedisServer),
}

impl Other {
    async fn start() -> Result<Other> {
        if std::env::var("SCRIPT_DIFFTEST_AGAINST").as_deref() == Ok("redis") {
            return Ok(Other::Redis(start_redis().await?.0));
        }
        let mut cluster = Cluster::start(3).await?;
        cluster.wait_for_leader(Duration::from_secs(20)).await?;
        Ok(Other::Dkv(cluster))
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        match self {
            Other::Dkv(cluster) => (0..cluster.len()).map(|i| cluster.resp_addr(i)).collect(),
            Other::Redis(server) => vec![server.addr],
        }
    }
}

async fn run_seed(other: &Other, seed: u64, calls: usize) -> Result<usize> {
    let (_redis, _) = start_redis().await?;
    let mut redis = Conn::connect(_redis.addr).await?;
    let mut nodes = Vec::new();
    for addr in other.addrs() {
        let mut c = Conn::connect(addr).await?;
        c.call(&[b"FLUSHALL".to_vec()]).await?;
        c.call(&[b"SCRIPT".to_vec(), b"FLUSH".to_vec()]).await?;
        c.call(&[b"FUNCTION".to_vec(), b"FLUSH".to_vec()]).await?;
        nodes.push(c);
    }
    let mut r = Rng(seed);
    let mut seen = Vec::new();
    let mut history: Vec<String> = Vec::new();
    let mut node = 0;
    let mut resp3 = false;
    let mut sent = 0;
    // What the replies were, by RESP type (errors by their first words), so
    // a run shows it exercised more than one outcome.
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    let mut keep_going: usize = std::env::var("SCRIPT_DIFFTEST_KEEP_GOING")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut differences = 0;
    // redis-server's last FUNCTION DUMP payload (what RESTORE sends).
    let mut last_dump: Vec<u8> = Vec::new();
    for index in 0..calls {
        if index % 50 == 49 {
            node = (node + 1) % nodes.len();
            // Each connection keeps its own protocol: bring the next one to
            // the protocol of the segment (HELLO's reply is not compared).
            resp3 = r.chance(30);
            let hello = vec![
                b"HELLO".to_vec(),
                if resp3 { b"3".to_vec() } else { b"2".to_vec() },
            ];
            redis.call(&hello).await?;
            nodes[node].call(&hello).await?;
        }
        if index % 100 == 99 {
            let digest = vec![b"DEBUG".to_vec(), b"DIGEST".to_vec()];
            let (a, b) = (redis.call(&digest).await?, nodes[node].call(&digest).await?);
            if a != b {
                bail!(
                    "script difftest seed {seed}, after call {index}: DEBUG DIGEST differs: redis {:?} other {:?}\nlast calls:\n{}",
                    String::from_utf8_lossy(&a),
                    String::from_utf8_lossy(&b),
                    history.join("\n")
                );
            }
        }
        let mut cmd = gen_call(&mut r, &mut seen);
        for arg in cmd.iter_mut() {
            if arg.as_slice() == LAST_DUMP {
                arg.clone_from(&last_dump);
            }
        }
        history.push(format!(
            "[{index}{}] {}",
            if resp3 { " resp3" } else { "" },
            show(&cmd)
        ));
        if history.len() > 12 {
            history.remove(0);
        }
        let mut a = redis.call(&cmd).await.context("redis")?;
        let mut b = nodes[node].call(&cmd).await.context("other")?;
        sent += 1;
        let sub = |name: &[u8]| {
            cmd[0].eq_ignore_ascii_case(b"function")
                && cmd.get(1).is_some_and(|s| s.eq_ignore_ascii_case(name))
        };
        if sub(b"list") {
            a = sorted_list(&a);
            b = sorted_list(&b);
        } else if sub(b"dump") && a != b {
            // Equal libraries in another order: equal records, and then
            // only the checksum over the order differs.
            if let (Some(x), Some(y)) = (dump_parts(&a), dump_parts(&b)) {
                if x == y {
                    b.clone_from(&a);
                }
            }
        }
        if a != b && same_collision(&a, &b) {
            b.clone_from(&a);
        }
        if sub(b"dump") {
            if let Some(payload) = bulk_of(&a) {
                last_dump = payload;
            }
        }
        let kind = match a.first() {
            Some(b'-') => {
                let text = String::from_utf8_lossy(&a[1..]);
                let words: Vec<&str> = text.split_whitespace().take(2).collect();
                format!("-{}", words.join(" "))
            }
            Some(&c) => (c as char).to_string(),
            None => String::new(),
        };
        // Function commands' replies are counted apart.
        let is_function = [&b"function"[..], b"fcall", b"fcall_ro"]
            .iter()
            .any(|n| cmd[0].eq_ignore_ascii_case(n));
        let kind = if is_function {
            format!("fn {kind}")
        } else {
            kind
        };
        *kinds.entry(kind).or_default() += 1;
        if a != b && keep_going > 0 {
            // SCRIPT_DIFFTEST_KEEP_GOING=n: print up to n differences and go on
            // (later replies may differ only because an earlier one did).
            keep_going -= 1;
            println!(
                "DIFF seed {seed}, call {index}:\n  redis: {:?}\n  other: {:?}\n  {}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                history.last().map(String::as_str).unwrap_or("")
            );
            differences += 1;
        } else if a != b {
            bail!(
                "script difftest seed {seed}, call {index}: replies differ\n  redis: {:?}\n  other: {:?}\nlast calls (replay with SCRIPT_DIFFTEST_SEEDS={seed}):\n{}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                history.join("\n")
            );
        }
    }
    let mut tally: Vec<(usize, String)> = kinds.into_iter().map(|(k, n)| (n, k)).collect();
    tally.sort_by(|a, b| b.cmp(a));
    let top: Vec<String> = tally
        .iter()
        .take(24)
        .map(|(n, k)| format!("{k:?} {n}"))
        .collect();
    println!("script difftest seed {seed}: replies {}", top.join(", "));
    if differences > 0 {
        bail!(
            "script difftest seed {seed}: {differences} differences (SCRIPT_DIFFTEST_KEEP_GOING)"
        );
    }
    Ok(sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_match_redis_server() -> Result<()> {
    if !program_available("redis-server", "--version") {
        println!("SKIPPED: redis-server is not installed (.ci/run installs it)");
        return Ok(());
    }
    let seeds = dkv_integration::rng::env_seeds("SCRIPT_DIFFTEST_SEEDS", "1,2,3,4")?;
    let calls = dkv_integration::rng::env_count("SCRIPT_DIFFTEST_CALLS", 5_100)?;
    let started = Instant::now();
    let mut total = 0;
    for seed in seeds {
        let other = Other::start().await?;
        let n = run_seed(&other, seed, calls)
            .await
            .map_err(|e| match &other {
                Other::Dkv(cluster) => anyhow::anyhow!("{e:#}\n{}", cluster.log_report()),
                Other::Redis(_) => e,
            })?;
        println!("script difftest seed {seed}: {n} calls, 0 differences");
        total += n;
    }
    println!(
        "script difftest: {total} calls in {:?}, 0 differences",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn frames_are_cut_where_resp_says() {
    let cases: &[(&[u8], Option<usize>)] = &[
        (b"+OK\r\n", Some(5)),
        (b"$3\r\nabc\r\n+X\r\n", Some(9)),
        (b"$3\r\nab", None),
        (b"$-1\r\n", Some(5)),
        (b"*2\r\n:1\r\n$1\r\nx\r\n", Some(15)),
        (b"*2\r\n:1\r\n", None),
        (b"%1\r\n+a\r\n,1.5\r\n", Some(14)),
        (b"~1\r\n#t\r\n", Some(8)),
        (b"|1\r\n+k\r\n+v\r\n:7\r\n", Some(16)),
        (b"*-1\r\n", Some(5)),
        (b"_\r\n", Some(3)),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            frame_len(bytes, 0).unwrap(),
            *want,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(frame_len(b"?x\r\n", 0).is_err());
}

#[test]
fn lua_literals_escape_every_byte_that_needs_it() {
    assert_eq!(lua_str("a'b\\c"), "'a\\'b\\\\c'");
    assert_eq!(lua_str("bin\0ary"), "'bin\\000ary'");
    assert_eq!(lua_str("\u{1}2"), "'\\0012'");
    assert_eq!(lua_str(""), "''");
}

#[test]
fn the_generator_is_a_function_of_its_seed() {
    let run = |seed| {
        let mut r = Rng(seed);
        let mut seen = Vec::new();
        (0..200)
            .map(|_| gen_call(&mut r, &mut seen))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
