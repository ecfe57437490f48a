//! Functions against Redis 7.0.15's answers (captured from `redis-server`
//! 7.0.15 with the same commands).

use bytes::Bytes;

use crate::kv::{Command, Db, Op, Output};

fn exec(db: &mut Db, args: &[&[u8]]) -> Output {
    db.apply(&Command {
        ts_ms: 1_796_199_185_068,
        op: Op::Exec {
            db: 0,
            args: args.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
        },
    })
}

fn load(db: &mut Db, code: &str) -> Output {
    exec(db, &[b"function", b"load", code.as_bytes()])
}

fn fcall(db: &mut Db, args: &[&str]) -> Output {
    let mut all: Vec<&[u8]> = vec![b"fcall"];
    all.extend(args.iter().map(|a| a.as_bytes()));
    exec(db, &all)
}

fn fcall_ro(db: &Db, args: &[&str]) -> Output {
    let mut all: Vec<Bytes> = vec![Bytes::from_static(b"fcall_ro")];
    all.extend(args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())));
    db.query(0, &all, 1_796_199_185_068, 0)
}

fn err(text: &str) -> Output {
    Output::err(text)
}

const LIB: &str = "#!lua name=lib\n\
local n = 0\n\
redis.register_function('cnt', function(k, a) n = n + 1; return n end)\n\
redis.register_function{function_name='ro', callback=function(k, a) return {k[1], a[1], #k, #a} end, flags={'no-writes'}, description='read only'}\n\
redis.register_function('w', function(k, a) return redis.call('set', k[1], a[1]) end)\n\
redis.register_function('e', function(k, a) return redis.call('nosuch') end)\n\
redis.register_function('e2', function(k, a) error('boom') end)\n\
redis.register_function('g', function(k, a) return KEYS end)\n\
redis.register_function('rc', function(k, a) return redis.replicate_commands() end)\n\
redis.register_function('rnd', function(k, a) return {math.random(100), math.random(100)} end)\n\
redis.register_function{function_name='wro', callback=function(k, a) return redis.call('set', 'x', '1') end, flags={'no-writes'}}";

#[test]
fn fcall_answers_as_redis() {
    let mut db = Db::new();
    assert_eq!(load(&mut db, LIB), Output::bulk("lib"));
    assert_eq!(
        fcall(&mut db, &["ro", "1", "k1", "a1", "a2"]),
        Output::Array(vec![
            Output::bulk("k1"),
            Output::bulk("a1"),
            Output::Integer(1),
            Output::Integer(2)
        ])
    );
    assert_eq!(
        fcall_ro(&db, &["w", "1", "k", "v"]),
        err("ERR Can not execute a script with write flag using *_ro command.")
    );
    assert_eq!(
        fcall(&mut db, &["w", "1", "k", "v"]),
        Output::Status("OK".into())
    );
    assert_eq!(db.get(b"k").map(|b| b.to_vec()), Some(b"v".to_vec()));
    assert_eq!(
        fcall(&mut db, &["e", "0"]),
        err("ERR Unknown Redis command called from script script: e, on @user_function:6.")
    );
    assert_eq!(
        fcall(&mut db, &["e2", "0"]),
        err("ERR user_function:7: boom script: e2, on @user_function:7.")
    );
    assert_eq!(
        fcall(&mut db, &["g", "0"]),
        err("ERR user_function:8: Script attempted to access nonexistent global variable 'KEYS' script: g, on @user_function:8.")
    );
    assert_eq!(
        fcall(&mut db, &["rc", "0"]),
        err("ERR user_function:9: attempt to call field 'replicate_commands' (a nil value) script: rc, on @user_function:9.")
    );
    // A fresh Redis's stream (functions share EVAL's).
    assert_eq!(
        fcall(&mut db, &["rnd", "0"]),
        Output::Array(vec![Output::Integer(40), Output::Integer(85)])
    );
    assert_eq!(
        fcall(&mut db, &["rnd", "0"]),
        Output::Array(vec![Output::Integer(36), Output::Integer(45)])
    );
    let read_only = err("ERR Write commands are not allowed from read-only scripts. script: wro, on @user_function:11.");
    assert_eq!(fcall(&mut db, &["wro", "0"]), read_only);
    assert_eq!(fcall_ro(&db, &["wro", "0"]), read_only);
    assert_eq!(
        fcall(&mut db, &["nosuch", "0"]),
        err("ERR Function not found")
    );
    assert_eq!(
        fcall(&mut db, &["nosuch", "x"]),
        err("ERR Function not found")
    );
    assert_eq!(
        fcall(&mut db, &["ro", "x"]),
        err("ERR Bad number of keys provided")
    );
    assert_eq!(
        fcall(&mut db, &["ro", "2", "a"]),
        err("ERR Number of keys can't be greater than number of args")
    );
    assert_eq!(
        fcall(&mut db, &["RO", "-1"]),
        err("ERR Number of keys can't be negative")
    );
}

/// Every call gets a fresh instance of its library (module docs of
/// `kv::script::library`): upvalues do not carry over, on any replica.
#[test]
fn every_call_starts_from_a_fresh_library_instance() {
    let mut db = Db::new();
    load(&mut db, LIB);
    assert_eq!(fcall(&mut db, &["cnt", "0"]), Output::Integer(1));
    assert_eq!(fcall(&mut db, &["cnt", "0"]), Output::Integer(1));
}

#[test]
fn load_errors_are_redis_texts() {
    let mut db = Db::new();
    let cases: &[(&str, &str)] = &[
        ("#!lua name=a\nlocal x = string.len('a')\nredis.register_function('f', function() return 1 end)",
         "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'string'"),
        ("#!lua name=a\nredis.register_function('f')",
         "ERR Error registering functions: ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."),
        ("#!lua name=a\nredis.register_function{function_name='f', callback=function() return 1 end, flags={'bad'}}",
         "ERR Error registering functions: ERR unknown flag given"),
        ("#!lua name=a\nredis.call('ping')",
         "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"),
        ("#!lua name=a\nredis.setresp(3)",
         "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'setresp'"),
        ("#!lua name=a\nerror('boom')",
         "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'error'"),
        ("#!lua name=a\nlocal x = 1", "ERR No functions registered"),
        ("#!lua name=a\nlocal x = ",
         "ERR Error compiling function: user_function:2: unexpected symbol near '<eof>'"),
        ("#!lua name=a\nredis.register_function('f-g', function() return 1 end)",
         "ERR Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"),
        ("#!lua name=a b\nreturn 1", "ERR Invalid metadata value given: b"),
        ("#!lua name=a name=b\nreturn 1",
         "ERR Invalid metadata value, name argument was given multiple times"),
        ("#!lua\nreturn 1", "ERR Library name was not given"),
        ("#!py name=a\nreturn 1", "ERR Engine 'py' not found"),
        ("return 1", "ERR Missing library metadata"),
        ("#!lua name=a", "ERR Invalid library metadata"),
        ("#!lua name=a-b\nx",
         "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"),
        ("#!lua name=a\nredis.register_function('f', function() return 1 end)\nredis.register_function('f', function() return 1 end)",
         "ERR Error registering functions: ERR Function already exists in the library"),
        ("#!lua name=a\nx = 1",
         "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"),
        ("#!lua name=a\nredis.x = 1",
         "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"),
        ("#!lua name=a\nlocal t = {}\nt.x = nil + 1",
         "ERR Error registering functions: ERR user_function:3: attempt to perform arithmetic on a nil value"),
        ("#!lua name=a\nwhile true do end",
         "ERR Error registering functions: ERR Script exceeded the execution budget of 100000000 Lua instructions and was stopped"),
    ];
    for (code, text) in cases {
        assert_eq!(load(&mut db, code), err(text), "{code}");
    }
    assert!(db.functions.is_empty());
    let f = "#!lua name=a\nredis.log(redis.LOG_WARNING, 'x')\nredis.register_function('f', function() return 1 end)";
    assert_eq!(load(&mut db, f), Output::bulk("a"));
    assert_eq!(load(&mut db, f), err("ERR Library 'a' already exists"));
    let b = "#!lua name=b\nredis.register_function('F', function() return 1 end)";
    assert_eq!(load(&mut db, b), err("ERR Function F already exists"));
    assert_eq!(
        exec(&mut db, &[b"function", b"load", b"replace", f.as_bytes()]),
        Output::bulk("a")
    );
    // A failed REPLACE keeps the old library.
    assert_eq!(
        exec(
            &mut db,
            &[
                b"function",
                b"load",
                b"replace",
                b"#!lua name=a\nlocal x = 1"
            ]
        ),
        err("ERR No functions registered")
    );
    assert_eq!(fcall(&mut db, &["F", "0"]), Output::Integer(1));
}

#[test]
fn named_registration_reads_flags_and_description() {
    let mut db = Db::new();
    let up = "#!LUA NAME=up\nredis.register_function('fA', function() return 1 end)\nredis.register_function{function_name='fB', callback=function() return 2 end, description=5, flags={'NO-WRITES', 'allow-oom'}}";
    assert_eq!(load(&mut db, up), Output::bulk("up"));
    let (_, name, info) = db.functions.function(b"FB").unwrap();
    assert_eq!(name, "fB");
    assert_eq!(info.description, Some(Bytes::from_static(b"5")));
    assert_eq!(info.flags, 1 | 2);
    assert_eq!(fcall_ro(&db, &["fb", "0"]), Output::Integer(2));
    assert!(super::fcall_reads(&db, b"fb"));
    assert!(!super::fcall_reads(&db, b"fa"));
    assert_eq!(
        exec(&mut db, &[b"function", b"delete", b"UP"]),
        err("ERR Library not found")
    );
    assert_eq!(exec(&mut db, &[b"function", b"delete", b"up"]), Output::Ok);
    assert_eq!(fcall(&mut db, &["fa", "0"]), err("ERR Function not found"));
}

/// `FUNCTION DUMP` of one library as Redis 7.0.15 writes it (captured),
/// restored, and the restore policies.
#[test]
fn dump_and_restore_round_trip_with_redis_payloads() {
    let mut db = Db::new();
    let code = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)";
    assert_eq!(load(&mut db, code), Output::bulk("mylib"));
    let payload = db.functions.dump();
    // `redis-cli function dump | xxd -p` of the same library on Redis 7.0.15.
    let redis = "f5c34056405b1f23216c7561206e616d653d6d796c69620a72656469732e72656769737465725f0b66756e6374696f6e28276d79400b02272c2040066012116b6579732c2061726773292072657475726e600c075b315d20656e64290a008d5936adc6e707da";
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, redis);
    let mut fresh = Db::new();
    assert_eq!(
        exec(&mut fresh, &[b"function", b"restore", &payload]),
        Output::Ok
    );
    assert_eq!(fresh.functions, db.functions);
    assert_eq!(
        exec(&mut fresh, &[b"function", b"restore", &payload]),
        err("ERR Library mylib already exists")
    );
    assert_eq!(
        exec(&mut fresh, &[b"function", b"restore", &payload, b"replace"]),
        Output::Ok
    );
    let other = "#!lua name=other\nredis.register_function('myfunc', function() return 1 end)";
    let mut third = Db::new();
    load(&mut third, other);
    assert_eq!(
        exec(&mut third, &[b"function", b"restore", &payload]),
        err("ERR Function myfunc already exists")
    );
    assert_eq!(
        exec(&mut third, &[b"function", b"restore", &payload, b"flush"]),
        Output::Ok
    );
    assert_eq!(third.functions, db.functions);
    let mut bad = payload.clone();
    bad[3] ^= 1;
    assert_eq!(
        exec(&mut third, &[b"function", b"restore", &bad]),
        err("ERR DUMP payload version or checksum are wrong")
    );
    let not_function = crate::kv::dump::seal(vec![0, 1, b'x']);
    assert_eq!(
        exec(&mut third, &[b"function", b"restore", &not_function]),
        err("ERR given type is not a function")
    );
    let truncated = crate::kv::dump::seal(vec![245, 40, b'x']);
    assert_eq!(
        exec(&mut third, &[b"function", b"restore", &truncated]),
        err("ERR Failed loading library payload")
    );
    assert_eq!(
        exec(
            &mut third,
            &[b"function", b"restore", &crate::kv::dump::seal(vec![])]
        ),
        Output::Ok
    );
}

/// Libraries survive a snapshot, and count in used memory the same after.
#[test]
fn libraries_are_in_snapshots() {
    let mut db = Db::new();
    load(&mut db, LIB);
    let bytes: Vec<u8> = db
        .snapshot_chunks(1 << 16)
        .flat_map(|c| c.to_vec())
        .collect();
    let restored = Db::restore(&bytes).unwrap();
    assert_eq!(restored.functions, db.functions);
    assert_eq!(restored.used_memory(), db.used_memory());
    let mut restored = restored;
    assert_eq!(
        fcall(&mut restored, &["ro", "1", "k", "a"]),
        Output::Array(vec![
            Output::bulk("k"),
            Output::bulk("a"),
            Output::Integer(1),
            Output::Integer(1)
        ])
    );
    assert_eq!(exec(&mut restored, &[b"function", b"flush"]), Output::Ok);
    assert!(restored.functions.is_empty());
    assert_eq!(restored.used_memory(), Db::new().used_memory());
}
