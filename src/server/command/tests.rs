//! The request → reply path against a fake backend: parsing, arity, options,
//! sessions (SELECT, MULTI, WATCH), and Redis's texts.

use super::fake::FakeBackend;
use super::*;
use crate::server::commands::introspection::glob_match;

struct Client {
    backend: FakeBackend,
    session: Session,
}

impl Client {
    fn new() -> Client {
        Client {
            backend: FakeBackend::new(),
            session: Session::new(7, None, None),
        }
    }

    fn run(&mut self, line: &str) -> Executed {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        futures_util::FutureExt::now_or_never(execute(&self.backend, &mut self.session, &args))
            .expect("the fake backend never waits")
    }

    fn reply(&mut self, line: &str) -> Reply {
        self.run(line).reply
    }

    fn error(&mut self, line: &str) -> String {
        match self.reply(line) {
            Reply::Error(text) => text,
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }
}

fn bulk(text: &str) -> Reply {
    Reply::bulk_str(text)
}

#[test]
fn every_command_reports_arity_errors_with_its_lower_case_name() {
    let mut client = Client::new();
    for spec in COMMANDS.iter() {
        // One argument short of the minimum, or one too many for exact arities.
        let argc = if spec.arity > 0 {
            spec.arity as usize + 1
        } else {
            spec.arity.unsigned_abs() as usize - 1
        };
        if argc == 0 {
            continue;
        }
        let mut line = spec.name.to_ascii_uppercase();
        for _ in 1..argc {
            line.push_str(" x");
        }
        assert_eq!(
            client.error(&line),
            format!("ERR wrong number of arguments for '{}' command", spec.name),
            "{line}"
        );
    }
}

#[test]
fn subcommands_report_arity_errors_with_their_full_name() {
    let mut client = Client::new();
    for spec in COMMANDS.iter() {
        for sub in spec.subcommands {
            let argc = if sub.arity > 0 {
                sub.arity as usize + 1
            } else {
                sub.arity.unsigned_abs() as usize - 1
            };
            if argc < 2 {
                continue;
            }
            let mut line = format!("{} {}", spec.name, sub.name.to_ascii_uppercase());
            for _ in 2..argc {
                line.push_str(" x");
            }
            assert_eq!(
                client.error(&line),
                format!(
                    "ERR wrong number of arguments for '{}' command",
                    sub.full_name
                ),
                "{line}"
            );
        }
    }
    assert_eq!(
        client.error("PING a b"),
        "ERR wrong number of arguments for 'ping' command"
    );
}

#[test]
fn unknown_command_text_matches_redis() {
    let mut client = Client::new();
    assert_eq!(
        client.error("foo a b"),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        client.error("foo"),
        "ERR unknown command 'foo', with args beginning with: "
    );
    let long = "x".repeat(200);
    assert_eq!(
        client.error(&format!("foo {long} y")),
        format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            "x".repeat(128)
        )
    );
    assert!(client.run("foo").command.is_none());
}

#[test]
fn unknown_subcommand_text_matches_redis() {
    let mut client = Client::new();
    assert_eq!(
        client.error("CLIENT xx"),
        "ERR unknown subcommand 'xx'. Try CLIENT HELP."
    );
    assert_eq!(
        client.error("config Bogus"),
        "ERR unknown subcommand 'Bogus'. Try CONFIG HELP."
    );
    assert_eq!(
        client.error("COMMAND xx"),
        "ERR unknown subcommand 'xx'. Try COMMAND HELP."
    );
}

#[test]
fn command_names_are_case_insensitive() {
    let mut client = Client::new();
    assert_eq!(client.reply("sEt k v"), Reply::OK);
    assert_eq!(client.reply("GET k"), bulk("v"));
    assert_eq!(client.reply("get k"), bulk("v"));
    assert_eq!(client.reply("PiNg"), Reply::Simple("PONG"));
    assert_eq!(client.reply("client GetName"), Reply::Null);
}

#[test]
fn set_get_del_exists_dbsize() {
    let mut client = Client::new();
    assert_eq!(client.reply("GET a"), Reply::Null);
    assert_eq!(client.reply("SET a 1"), Reply::OK);
    assert_eq!(client.reply("SET b 2"), Reply::OK);
    assert_eq!(client.reply("EXISTS a a b zz"), Reply::Integer(3));
    assert_eq!(client.reply("DBSIZE"), Reply::Integer(2));
    assert_eq!(client.reply("DEL a a zz"), Reply::Integer(1));
    assert_eq!(client.reply("GET a"), Reply::Null);
    assert_eq!(client.error("SET a b EX"), "ERR syntax error");
}

/// A plain `SET key value` and a `DEL` in db 0 are proposed in the log's
/// compact forms (`Op::Set`, `Op::Del`); with an option, in another
/// database, or any other command, as `Op::Exec`.
#[test]
fn plain_set_and_del_in_db0_are_proposed_compactly() {
    let mut client = Client::new();
    for line in ["SET k v", "DEL a b", "SET k v EX 10", "SETNX k v"] {
        client.reply(line);
    }
    client.reply("SELECT 1");
    client.reply("SET k v");
    client.reply("DEL a");
    let proposed = client.backend.proposed.lock().unwrap().clone();
    let shapes: Vec<String> = proposed
        .iter()
        .map(|op| match op {
            Op::Set { key, value } => format!("Set {key:?} {value:?}"),
            Op::Del { keys } => format!("Del {keys:?}"),
            Op::Exec { db, args } => format!("Exec {db} {}", args.len()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shapes,
        [
            "Set b\"k\" b\"v\"",
            "Del [b\"a\", b\"b\"]",
            "Exec 0 5",
            "Exec 0 3",
            "Exec 1 3",
            "Exec 1 2",
        ]
    );
}

/// A connection's write takes its request's arguments instead of copying
/// them: the operation taken is the one `execute` copies, and giving it back
/// leaves the arguments as the client sent them (the slow log reads them).
#[test]
fn a_write_taken_from_its_arguments_is_the_copied_one_and_gives_them_back() {
    let mut client = Client::new();
    for (db, line) in [
        (0, "set k v"),
        (0, "DEL a b c"),
        (0, "SET k v EX 10"),
        (0, "LPUSH l x y"),
        (1, "SET k v"),
        (1, "DEL a"),
    ] {
        client.session.db = db;
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let lent = match prepare(&client.backend, &mut client.session, &args) {
            Prepared::Action {
                action: Action::WriteArgs(lent),
                ..
            } => lent,
            _ => panic!("{line}: a write of its own arguments"),
        };
        let copied = lent.copy(&args);
        let mut taken_from = args.clone();
        let taken = lent.take(&mut taken_from);
        assert_eq!(taken, copied, "{line}");
        assert!(taken_from.len() <= 1, "{line}: {taken_from:?} left");
        lent.give_back(taken, &mut taken_from);
        assert_eq!(taken_from, args, "{line}");
        // What a request that was not taken from keeps.
        let mut kept = args.clone();
        lent.give_back(copied, &mut kept);
        assert_eq!(kept, args, "{line}");
    }
}

/// A write whose arguments fail its check is answered at once, with Redis's
/// text, and never proposed; a write whose error depends on the data is.
#[test]
fn writes_failing_their_check_are_answered_without_being_proposed() {
    let mut client = Client::new();
    let proposals = |client: &Client| *client.backend.proposals.lock().unwrap();
    let refused = [
        (
            "EXPIRE k notanumber",
            "ERR value is not an integer or out of range",
        ),
        (
            "PEXPIRE k 1 NX XX",
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        ("INCRBY k x", "ERR value is not an integer or out of range"),
        (
            "DECRBY k -9223372036854775808",
            "ERR decrement would overflow",
        ),
        (
            "HSET k f v g",
            "ERR wrong number of arguments for 'hset' command",
        ),
        ("HINCRBYFLOAT k f inf", "ERR value is NaN or Infinity"),
        ("SETRANGE k -1 v", "ERR offset is out of range"),
        (
            "COPY a b DB x",
            "ERR value is not an integer or out of range",
        ),
        ("MOVE k 16", "ERR DB index is out of range"),
        (
            "MSET a 1 b",
            "ERR wrong number of arguments for 'mset' command",
        ),
        ("SWAPDB 0 x", "ERR invalid second DB index"),
        ("FLUSHALL now", "ERR syntax error"),
        ("SET k v EX 0", "ERR invalid expire time in 'set' command"),
    ];
    for (line, text) in refused {
        assert_eq!(client.error(line), text, "{line}");
    }
    assert_eq!(proposals(&client), 0);
    // Data-dependent errors are apply's: proposed, then answered.
    assert_eq!(
        client.error("INCRBYFLOAT k x"),
        "ERR value is not a valid float"
    );
    assert_eq!(proposals(&client), 1);
    assert_eq!(client.reply("EXPIRE k 10"), Reply::Integer(0));
    assert_eq!(proposals(&client), 2);
    // Inside MULTI only the arity is checked at queue time; EXEC answers
    // the failing check in place.
    client.reply("MULTI");
    assert_eq!(client.reply("INCRBY k x"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("SET k 1"), Reply::Simple("QUEUED"));
    assert_eq!(
        client.reply("EXEC"),
        Reply::Array(vec![
            Reply::error("ERR value is not an integer or out of range"),
            Reply::OK,
        ])
    );
}

/// Over maxmemory Redis answers OOM to a `denyoom` write before checking
/// its arguments; other writes still get their argument error at once.
/// Neither is proposed: only valid operations reach the log.
#[test]
fn over_maxmemory_a_denyoom_write_gets_oom_before_its_argument_error() {
    let mut client = Client::new();
    let proposals = |client: &Client| *client.backend.proposals.lock().unwrap();
    assert_eq!(client.reply("CONFIG SET maxmemory 1"), Reply::OK);
    assert_eq!(client.reply("SET a b"), Reply::OK);
    let before = proposals(&client);
    let oom = "OOM command not allowed when used memory > 'maxmemory'.";
    assert_eq!(client.error("INCRBY k x"), oom);
    assert_eq!(client.error("SET k v EX 0"), oom);
    assert_eq!(proposals(&client), before);
    assert_eq!(
        client.error("EXPIRE k x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(proposals(&client), before);
    assert_eq!(client.reply("CONFIG SET maxmemory 0"), Reply::OK);
    let before = proposals(&client);
    assert_eq!(
        client.error("INCRBY k x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(proposals(&client), before);
}

#[test]
fn node_errors_become_their_resp_text() {
    let mut client = Client::new();
    client.backend.error = Some(RequestError::NoLeader);
    assert_eq!(client.error("SET a 1"), "CLUSTERDOWN No raft leader");
    client.backend.error = Some(RequestError::Loading);
    assert!(client.error("GET a").starts_with("LOADING "));
    // Connection commands do not touch the node.
    assert_eq!(client.reply("PING"), Reply::Simple("PONG"));
}

#[test]
fn ping_echo_quit() {
    let mut client = Client::new();
    assert_eq!(client.reply("PING hi"), bulk("hi"));
    assert_eq!(client.reply("ECHO x"), bulk("x"));
    let quit = client.run("QUIT");
    assert_eq!((quit.reply, quit.close), (Reply::OK, true));
}

#[test]
fn auth_texts_match_redis_7() {
    let mut client = Client::new();
    assert_eq!(
        client.error("AUTH x"),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    assert_eq!(
        client.error("AUTH u p"),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(client.reply("AUTH default p"), Reply::OK);
    assert_eq!(client.error("AUTH a b c"), "ERR syntax error");
}

#[test]
fn select_switches_among_sixteen_databases() {
    let mut client = Client::new();
    assert_eq!(client.reply("SET k zero"), Reply::OK);
    assert_eq!(client.reply("SELECT 15"), Reply::OK);
    assert_eq!(client.reply("GET k"), Reply::Null);
    assert_eq!(client.reply("SET k fifteen"), Reply::OK);
    assert_eq!(client.error("SELECT 16"), "ERR DB index is out of range");
    assert_eq!(client.error("SELECT -1"), "ERR DB index is out of range");
    assert_eq!(
        client.error("SELECT x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(client.reply("SELECT 0"), Reply::OK);
    assert_eq!(client.reply("GET k"), bulk("zero"));
    assert_eq!(client.reply("MOVE k 3"), Reply::Integer(1));
    assert_eq!(client.reply("SWAPDB 0 3"), Reply::OK);
    assert_eq!(client.reply("GET k"), bulk("zero"));
}

#[test]
fn multi_exec_queues_and_applies_atomically() {
    let mut client = Client::new();
    assert_eq!(client.error("EXEC"), "ERR EXEC without MULTI");
    assert_eq!(client.error("DISCARD"), "ERR DISCARD without MULTI");
    assert_eq!(client.reply("MULTI"), Reply::OK);
    assert_eq!(client.error("MULTI"), "ERR MULTI calls can not be nested");
    assert_eq!(client.reply("SET a 1"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("INCR a"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("SELECT 2"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("SET b x"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("INCR b"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("PING"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("CLIENT ID"), Reply::Simple("QUEUED"));
    assert_eq!(
        client.reply("EXEC"),
        Reply::Array(vec![
            Reply::OK,
            Reply::Integer(2),
            Reply::OK,
            Reply::OK,
            Reply::error("ERR value is not an integer or out of range"),
            Reply::Simple("PONG"),
            Reply::Integer(7),
        ])
    );
    assert_eq!(
        client.session.db, 2,
        "SELECT inside MULTI sticks after EXEC"
    );
    assert_eq!(client.reply("GET b"), bulk("x"));
}

#[test]
fn queuing_errors_abort_the_transaction() {
    let mut client = Client::new();
    client.reply("MULTI");
    assert_eq!(client.reply("SET a 1"), Reply::Simple("QUEUED"));
    assert!(client
        .error("GET")
        .starts_with("ERR wrong number of arguments"));
    assert!(client.error("NOSUCH x").starts_with("ERR unknown command"));
    assert_eq!(
        client.error("EXEC"),
        "EXECABORT Transaction discarded because of previous errors."
    );
    assert_eq!(client.reply("GET a"), Reply::Null);
    client.reply("MULTI");
    client.reply("SET a 1");
    assert_eq!(client.reply("DISCARD"), Reply::OK);
    assert_eq!(client.reply("GET a"), Reply::Null);
}

#[test]
fn watch_aborts_exec_when_a_watched_key_changes() {
    let mut client = Client::new();
    assert_eq!(client.reply("WATCH w"), Reply::OK);
    client.reply("SET w changed");
    client.reply("MULTI");
    assert_eq!(
        client.error("WATCH x"),
        "ERR WATCH inside MULTI is not allowed"
    );
    client.reply("SET a 1");
    assert_eq!(client.reply("EXEC"), Reply::NilArray);
    assert_eq!(client.reply("GET a"), Reply::Null);
    assert_eq!(client.reply("WATCH w"), Reply::OK);
    client.reply("MULTI");
    client.reply("SET a 1");
    assert_eq!(client.reply("EXEC"), Reply::Array(vec![Reply::OK]));
    assert_eq!(client.reply("WATCH w"), Reply::OK);
    assert_eq!(client.reply("UNWATCH"), Reply::OK);
    client.reply("SET w again");
    client.reply("MULTI");
    assert_eq!(client.reply("EXEC"), Reply::Array(vec![]));
}

#[test]
fn reset_and_readonly() {
    let mut client = Client::new();
    client.reply("SELECT 3");
    client.reply("MULTI");
    assert_eq!(client.reply("RESET"), Reply::Simple("RESET"));
    assert_eq!(client.session.db, 0);
    assert!(client.session.multi.is_none());
    assert_eq!(client.reply("READONLY"), Reply::OK);
    assert_eq!(client.reply("GET a"), Reply::Null);
    assert_eq!(client.reply("READWRITE"), Reply::OK);
}

#[test]
fn type_ttl_and_wrongtype_replies() {
    let mut client = Client::new();
    client.reply("SET s v EX 100");
    assert_eq!(client.reply("TYPE s"), Reply::Status("string".into()));
    assert_eq!(client.reply("TTL s"), Reply::Integer(100));
    client.reply("HSET h f v");
    assert_eq!(
        client.error("GET h"),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        client.reply("HGETALL h"),
        Reply::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(client.reply("CONFIG SET maxmemory 1mb"), Reply::OK);
    assert_eq!(
        client.reply("CONFIG GET maxmemory"),
        Reply::Map(vec![(bulk("maxmemory"), bulk("1048576"))])
    );
    assert_eq!(
        client.error("CONFIG SET port 1"),
        "ERR Unknown option or number of arguments for CONFIG SET - 'port'"
    );
}

#[test]
fn hello_switches_protocol_and_reports_the_server() {
    let mut client = Client::new();
    let Reply::Map(pairs) = client.reply("HELLO 3") else {
        panic!("HELLO replies with a map");
    };
    assert_eq!(client.session.protocol, Protocol::Resp3);
    let keys: Vec<Reply> = pairs.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        ["server", "version", "proto", "id", "mode", "role", "modules"]
            .map(bulk)
            .to_vec()
    );
    assert_eq!(pairs[2].1, Reply::Integer(3));
    assert_eq!(pairs[3].1, Reply::Integer(7));
    assert_eq!(pairs[5].1, bulk("master"));
    assert_eq!(pairs[6].1, Reply::Array(vec![]));
    client.reply("HELLO 2");
    assert_eq!(client.session.protocol, Protocol::Resp2);
    client.backend.role = crate::raft::Role::Follower;
    let Reply::Map(pairs) = client.reply("HELLO") else {
        panic!("HELLO replies with a map");
    };
    assert_eq!(pairs[5].1, bulk("replica"));
}

#[test]
fn hello_errors_match_redis() {
    let mut client = Client::new();
    assert_eq!(
        client.error("HELLO 4"),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        client.error("HELLO 1"),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        client.error("HELLO x"),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(
        client.error("HELLO 3 SETNAME"),
        "ERR Syntax error in HELLO option 'SETNAME'"
    );
    assert_eq!(
        client.error("HELLO 3 SETNAME a b"),
        "ERR Syntax error in HELLO option 'b'"
    );
    assert_eq!(
        client.error("HELLO 3 AUTH u p"),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        client.session.protocol,
        Protocol::Resp2,
        "errors change nothing"
    );
    assert!(matches!(
        client.reply("HELLO 3 AUTH default pw SETNAME app"),
        Reply::Map(_)
    ));
    assert_eq!(client.reply("CLIENT GETNAME"), bulk("app"));
}

#[test]
fn client_subcommands() {
    let mut client = Client::new();
    assert_eq!(client.reply("CLIENT SETNAME conn1"), Reply::OK);
    assert_eq!(client.reply("CLIENT GETNAME"), bulk("conn1"));
    assert_eq!(
        client.error("CLIENT SETNAME a\nb"),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(client.reply("CLIENT SETINFO LIB-NAME redis-py"), Reply::OK);
    assert_eq!(client.reply("CLIENT SETINFO lib-ver 5.0.1"), Reply::OK);
    assert_eq!(
        client.error("CLIENT SETINFO foo 1"),
        "ERR Unrecognized option 'foo'"
    );
    assert_eq!(client.reply("CLIENT ID"), Reply::Integer(7));
    let Reply::Verbatim(info) = client.reply("CLIENT INFO") else {
        panic!("CLIENT INFO is text");
    };
    assert!(info.starts_with("id=7 "), "{info}");
    assert!(info.contains(" name=conn1 "), "{info}");
    assert!(
        info.contains(" resp=2 lib-name=redis-py lib-ver=5.0.1\n"),
        "{info}"
    );
    assert!(matches!(client.reply("CLIENT HELP"), Reply::Array(_)));
}

#[test]
fn command_introspection() {
    let mut client = Client::new();
    assert_eq!(
        client.reply("COMMAND COUNT"),
        Reply::Integer(COMMANDS.len() as i64)
    );
    let Reply::Array(all) = client.reply("COMMAND") else {
        panic!("COMMAND is an array");
    };
    assert_eq!(all.len(), COMMANDS.len());
    let Reply::Array(info) = client.reply("COMMAND INFO get nosuch") else {
        panic!("COMMAND INFO is an array");
    };
    assert_eq!(info[1], Reply::Null);
    let Reply::Array(get) = &info[0] else {
        panic!("an entry is an array");
    };
    assert_eq!(get[0], bulk("get"));
    assert_eq!(get[1], Reply::Integer(2));
    assert_eq!(
        get[2],
        Reply::Array(vec![Reply::Simple("readonly"), Reply::Simple("fast")])
    );
    assert_eq!(
        &get[3..6],
        &[Reply::Integer(1), Reply::Integer(1), Reply::Integer(1)]
    );
    let Reply::Map(all) = client.reply("COMMAND DOCS") else {
        panic!("COMMAND DOCS is a map")
    };
    assert_eq!(all.len(), COMMANDS.len());
    let Reply::Map(get) = client.reply("COMMAND DOCS get") else {
        panic!("COMMAND DOCS is a map")
    };
    assert_eq!(get.len(), 1);
    assert_eq!(get[0].0, bulk("get"));
}

/// COMMAND LIST names every command and then its subcommands in full, and
/// FILTERBY keeps what Redis keeps (checked against redis-server 7.0.15).
#[test]
fn command_list_names_subcommands_and_filters() {
    let mut client = Client::new();
    let names = |reply: Reply| -> Vec<String> {
        let Reply::Array(items) = reply else {
            panic!("COMMAND LIST is an array")
        };
        let mut names: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("a name is a bulk string: {other:?}"),
            })
            .collect();
        names.sort();
        names
    };
    let all = names(client.reply("COMMAND LIST"));
    let subcommands: usize = COMMANDS.iter().map(|spec| spec.subcommands.len()).sum();
    assert_eq!(all.len(), COMMANDS.len() + subcommands);
    assert!(all.contains(&"config|get".to_string()));
    assert!(all.contains(&"get".to_string()));
    assert_eq!(
        names(client.reply("COMMAND LIST FILTERBY PATTERN CONF*")),
        [
            "config",
            "config|get",
            "config|help",
            "config|resetstat",
            "config|set"
        ]
    );
    assert_eq!(
        names(client.reply("command list filterby aclcat HyperLogLog")),
        ["pfadd", "pfcount", "pfdebug", "pfmerge", "pfselftest"]
    );
    // Redis names categories without '@' here; with it, none matches.
    assert_eq!(
        names(client.reply("COMMAND LIST FILTERBY ACLCAT @hyperloglog")),
        Vec::<String>::new()
    );
    assert_eq!(
        names(client.reply("COMMAND LIST FILTERBY MODULE anything")),
        Vec::<String>::new()
    );
    for bad in [
        "COMMAND LIST nosuch",
        "COMMAND LIST FILTERBY PATTERN",
        "COMMAND LIST FILTERBY COLOUR red",
        "COMMAND LIST FILTERBY PATTERN a extra",
        // One filter only: Redis wants FILTERBY's two values to end the line.
        "COMMAND LIST FILTERBY PATTERN x* FILTERBY PATTERN pfc*",
    ] {
        assert_eq!(client.error(bad), "ERR syntax error", "{bad}");
    }
}

/// COMMAND INFO and COMMAND DOCS take a subcommand by its full name, as
/// Redis's `lookupCommandBySds` does; other shapes are unknown.
#[test]
fn command_info_and_docs_take_subcommands_by_full_name() {
    let mut client = Client::new();
    let Reply::Array(info) =
        client.reply("COMMAND INFO CONFIG|GET get|x config|get|x config|nosuch object|encoding")
    else {
        panic!("COMMAND INFO is an array");
    };
    let Reply::Array(entry) = &info[0] else {
        panic!("an entry is an array: {:?}", info[0]);
    };
    assert_eq!(entry[0], bulk("config|get"));
    assert_eq!(entry[1], Reply::Integer(-3));
    assert_eq!(entry[9], Reply::Array(vec![]));
    assert_eq!(&info[1..4], &[Reply::Null, Reply::Null, Reply::Null]);
    let Reply::Array(entry) = &info[4] else {
        panic!("an entry is an array: {:?}", info[4]);
    };
    assert_eq!(entry[0], bulk("object|encoding"));
    assert_eq!(
        &entry[3..6],
        &[Reply::Integer(2), Reply::Integer(2), Reply::Integer(1)]
    );

    let Reply::Map(docs) = client.reply("COMMAND DOCS object|encoding nosuch|x config") else {
        panic!("COMMAND DOCS is a map")
    };
    assert_eq!(docs.len(), 2, "an unknown name is left out");
    assert_eq!(docs[0].0, bulk("object|encoding"));
    let Reply::Map(fields) = &docs[0].1 else {
        panic!("an entry is a map")
    };
    let field = |fields: &[(Reply, Reply)], name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == bulk(name))
            .map(|(_, v)| v.clone())
    };
    let Some(Reply::Array(arguments)) = field(fields, "arguments") else {
        panic!("OBJECT ENCODING takes a key: {fields:?}")
    };
    assert_eq!(arguments.len(), 1);
    // A container lists its subcommands' docs and no arguments of its own.
    assert_eq!(docs[1].0, bulk("config"));
    let Reply::Map(fields) = &docs[1].1 else {
        panic!("an entry is a map")
    };
    assert_eq!(field(fields, "arguments"), None);
    let Some(Reply::Map(subs)) = field(fields, "subcommands") else {
        panic!("CONFIG's docs list its subcommands: {fields:?}")
    };
    assert!(subs.iter().any(|(name, _)| *name == bulk("config|get")));
    // A command without arguments shows none, as Redis leaves the field out.
    let Reply::Map(docs) = client.reply("COMMAND DOCS dbsize") else {
        panic!("COMMAND DOCS is a map")
    };
    let Reply::Map(fields) = &docs[0].1 else {
        panic!("an entry is a map")
    };
    assert_eq!(field(fields, "arguments"), None);
}

/// A row's `.doc(...)` is what COMMAND DOCS shows (Redis 7.0.15's values).
#[test]
fn command_docs_show_the_rows_summary_since_and_complexity() {
    let mut client = Client::new();
    let Reply::Map(entries) = client.reply("COMMAND DOCS getex") else {
        panic!("COMMAND DOCS is a map")
    };
    let Reply::Map(fields) = &entries[0].1 else {
        panic!("an entry is a map")
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == bulk(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        field("summary"),
        Some(bulk(
            "Get the value of a key and optionally set its expiration"
        ))
    );
    assert_eq!(field("since"), Some(bulk("6.2.0")));
    assert_eq!(field("complexity"), Some(bulk("O(1)")));
    let Reply::Map(entries) = client.reply("COMMAND DOCS hkeys") else {
        panic!("COMMAND DOCS is a map")
    };
    let Reply::Map(fields) = &entries[0].1 else {
        panic!("an entry is a map")
    };
    assert!(fields.contains(&(
        bulk("complexity"),
        bulk("O(N) where N is the size of the hash.")
    )));
    assert!(fields.contains(&(bulk("since"), bulk("2.0.0"))));
}

/// Every command and subcommand row carries its own docs: a row without a
/// summary shows COMMAND DOCS, and redis-cli's hints, a placeholder ("The
/// Redis CONFIG GET command.") and its container's version.
#[test]
fn every_command_and_subcommand_row_has_a_summary_and_since() {
    for spec in crate::cmd::COMMANDS.iter() {
        assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
        assert!(!spec.since.is_empty(), "{} has no since", spec.name);
        for sub in spec.subcommands {
            assert!(!sub.summary.is_empty(), "{} has no summary", sub.full_name);
            assert!(!sub.since.is_empty(), "{} has no since", sub.full_name);
        }
    }
}

/// A subcommand's docs are Redis 7.0.15's, asked by full name and inside
/// its container's docs (where redis-cli reads its hints).
#[test]
fn command_docs_show_a_subcommands_own_summary_since_and_complexity() {
    let mut client = Client::new();
    let field = |fields: &[(Reply, Reply)], name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == bulk(name))
            .map(|(_, v)| v.clone())
    };
    let Reply::Map(entries) = client.reply("COMMAND DOCS config|get") else {
        panic!("COMMAND DOCS is a map")
    };
    assert_eq!(entries[0].0, bulk("config|get"));
    let Reply::Map(fields) = &entries[0].1 else {
        panic!("an entry is a map")
    };
    assert_eq!(
        field(fields, "summary"),
        Some(bulk("Get the values of configuration parameters"))
    );
    assert_eq!(field(fields, "since"), Some(bulk("2.0.0")));
    assert_eq!(
        field(fields, "complexity"),
        Some(bulk(
            "O(N) when N is the number of configuration parameters provided"
        ))
    );

    let Reply::Map(entries) = client.reply("COMMAND DOCS xinfo") else {
        panic!("COMMAND DOCS is a map")
    };
    let Reply::Map(fields) = &entries[0].1 else {
        panic!("an entry is a map")
    };
    let Some(Reply::Map(subs)) = field(fields, "subcommands") else {
        panic!("XINFO's docs list its subcommands: {fields:?}")
    };
    let Some((_, Reply::Map(stream))) = subs.iter().find(|(k, _)| *k == bulk("xinfo|stream"))
    else {
        panic!("XINFO's docs list xinfo|stream: {subs:?}")
    };
    assert_eq!(
        field(stream, "summary"),
        Some(bulk("Get information about a stream"))
    );
    assert_eq!(field(stream, "since"), Some(bulk("5.0.0")));
    assert_eq!(field(stream, "complexity"), Some(bulk("O(1)")));
}

#[test]
fn config_get_returns_pairs() {
    let mut client = Client::new();
    assert_eq!(
        client.reply("CONFIG GET save"),
        Reply::Map(vec![(bulk("save"), bulk(""))])
    );
    assert_eq!(
        client.reply("CONFIG GET appendonly SAVE"),
        Reply::Map(vec![
            (bulk("save"), bulk("")),
            (bulk("appendonly"), bulk("no"))
        ])
    );
    assert_eq!(client.reply("CONFIG GET nosuch"), Reply::Map(vec![]));
    let Reply::Map(pairs) = client.reply("CONFIG GET maxmemory*") else {
        panic!("CONFIG GET is a map");
    };
    assert_eq!(pairs.len(), 4, "maxmemory, -policy, -samples, -clients");
    assert_eq!(
        client.error("CONFIG GET"),
        "ERR wrong number of arguments for 'config|get' command"
    );
}

#[test]
fn glob_matches_like_redis() {
    assert!(glob_match(b"*", b"save"));
    assert!(glob_match(b"max*", b"maxmemory-policy"));
    assert!(glob_match(b"s?ve", b"save"));
    assert!(glob_match(b"*memory*", b"maxmemory"));
    assert!(!glob_match(b"max", b"maxmemory"));
    assert!(!glob_match(b"*x", b"save"));
}

#[test]
fn info_has_redis_sections_and_raft() {
    let mut client = Client::new();
    let Reply::Verbatim(all) = client.reply("INFO") else {
        panic!("INFO is text");
    };
    for header in [
        "# Server\r\n",
        "# Clients\r\n",
        "# Persistence\r\n",
        "# Replication\r\n",
        "# Raft\r\n",
        "# Keyspace\r\n",
    ] {
        assert!(all.contains(header), "{header} missing in {all}");
    }
    assert!(all.contains("\r\nloading:0\r\n"));
    assert!(all.contains("\r\nrole:master\r\n"));
    assert!(all.contains("\r\nraft_term:3\r\n"));
    assert!(all.contains("\r\nraft_commit_index:7\r\n"));
    assert_eq!(
        client.reply("INFO keyspace"),
        Reply::Verbatim("# Keyspace\r\n".into())
    );
    client.reply("SET a 1");
    assert_eq!(
        client.reply("INFO KEYSPACE"),
        Reply::Verbatim("# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n".into())
    );
    assert_eq!(client.reply("INFO nosuch"), Reply::Verbatim(String::new()));
    let Reply::Verbatim(two) = client.reply("INFO clients keyspace") else {
        panic!("INFO is text");
    };
    assert!(two.starts_with("# Clients\r\n"));
    assert!(two.contains("\r\n\r\n# Keyspace\r\n"));
}

/// The text INFO answered.
fn info_text(client: &mut Client, line: &str) -> String {
    let Reply::Verbatim(text) = client.reply(line) else {
        panic!("INFO is text");
    };
    text
}

/// One INFO field's value.
fn info_field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing in {text}"))
        .to_string()
}

/// INFO memory: used_memory is the allocator's figure (the resident set
/// when the allocator cannot be asked), the replicated data estimate that
/// maxmemory counts is used_memory_dataset, and the allocator is named.
#[test]
fn info_memory_reports_rss_and_the_allocator() {
    let mut client = Client::new();
    client.backend.facts.mem_allocator = "mimalloc";
    client.reply("SET a 1");
    let memory = info_text(&mut client, "INFO memory");
    let field = |name: &str| info_field(&memory, name);
    let rss: u64 = field("used_memory_rss").parse().unwrap();
    assert!(
        rss > 1 << 20,
        "a running test process has more than 1 MiB resident: {rss}"
    );
    assert!(field("used_memory_rss_human").ends_with('M'));
    assert_eq!(field("mem_allocator"), "mimalloc");
    let dataset: u64 = field("used_memory_dataset").parse().unwrap();
    assert!(dataset > 0, "one key is held");
    assert_eq!(field("maxmemory_used_memory"), field("used_memory_dataset"));
    let used: u64 = field("used_memory").parse().unwrap();
    assert!(
        used > 1 << 20,
        "no allocator figures: the resident set, {used}"
    );

    fn figures() -> crate::server::info::AllocatorFigures {
        crate::server::info::AllocatorFigures {
            allocated_bytes: 5 << 20,
            peak_allocated_bytes: 6 << 20,
            committed_bytes: 7 << 20,
        }
    }
    client.backend.facts.allocator_figures = Some(figures);
    let memory = info_text(&mut client, "INFO memory");
    let field = |name: &str| info_field(&memory, name);
    assert_eq!(field("used_memory"), (5u64 << 20).to_string());
    assert_eq!(field("used_memory_human"), "5.00M");
    assert_eq!(field("used_memory_peak"), (6u64 << 20).to_string());
    assert_eq!(field("used_memory_peak_perc"), "83.33%");
    // Live bytes against the allocator's committed pages.
    assert_eq!(field("allocator_allocated"), (5u64 << 20).to_string());
    assert_eq!(field("allocator_active"), (7u64 << 20).to_string());
    assert_eq!(field("allocator_frag_ratio"), "1.40");
    assert_eq!(field("allocator_frag_bytes"), (2u64 << 20).to_string());
}

#[test]
fn counters_count_ok_and_errors() {
    let counters = CommandCounters::register();
    let mut client = Client::new();
    counters.record(&client.run("PING"));
    counters.record(&client.run("nosuch"));
    counters.record(&client.run("GET"));
}

/// WAIT: Redis's argument errors; on the leader the followers at or past
/// the last log index (the fake's: one at 8 of 8, one at 5); inside MULTI
/// at once; on a follower, after a read barrier, what a majority proves.
#[test]
fn wait_counts_followers_holding_the_writes() {
    let mut client = Client::new();
    assert_eq!(
        client.error("WAIT x 0"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(client.error("WAIT 1 -1"), "ERR timeout is negative");
    assert_eq!(
        client.error("WAIT 1 x"),
        "ERR timeout is not an integer or out of range"
    );
    assert_eq!(
        client.error("WAIT 1"),
        "ERR wrong number of arguments for 'wait' command"
    );
    assert_eq!(client.reply("WAIT 1 0"), Reply::Integer(1));
    assert_eq!(client.reply("WAIT -3 0"), Reply::Integer(1));
    client.reply("MULTI");
    assert_eq!(client.reply("WAIT 2 0"), Reply::Simple("QUEUED"));
    assert_eq!(client.reply("EXEC"), Reply::Array(vec![Reply::Integer(1)]));
    client.backend.role = crate::raft::Role::Follower;
    assert_eq!(client.reply("WAIT 2 0"), Reply::Integer(1));
}

/// Redis 7.0.15's SORT for a user who may not read every key: `BY` with a
/// pattern and any `GET` are refused where the parse reaches them (an
/// earlier syntax error first; a constant `BY` allowed), before anything is
/// proposed; inside MULTI the command is queued and refused at EXEC.
#[test]
fn sort_patterns_need_access_to_every_key() {
    let mut client = Client::new();
    for line in [
        "ACL SETUSER u on nopass +@all ~k*",
        "ACL SETUSER r on nopass +@all ~k* %R~*",
        "ACL SETUSER w on nopass +@all ~k* %W~*",
        "RPUSH k1 3 1 2",
        "SET w_1 5",
    ] {
        assert!(!client.reply(line).is_error(), "{line}");
    }
    let proposals = |client: &Client| *client.backend.proposals.lock().unwrap();
    let by = "ERR BY option of SORT denied due to insufficient ACL permissions.";
    let get = "ERR GET option of SORT denied due to insufficient ACL permissions.";
    let sorted = Reply::Array(vec![bulk("1"), bulk("2"), bulk("3")]);
    for user in ["u", "w"] {
        assert_eq!(client.reply(&format!("AUTH {user} x")), Reply::OK);
        let before = proposals(&client);
        assert_eq!(client.error("SORT k1 BY w_*"), by);
        assert_eq!(client.error("SORT k1 GET #"), get);
        assert_eq!(client.error("SORT_RO k1 GET w_*"), get);
        assert_eq!(client.error("SORT_RO k1 BY w_* GET #"), by);
        assert_eq!(client.error("SORT k1 GET # BY w_*"), get);
        assert_eq!(client.error("SORT k1 BY w_* STORE k2"), by);
        assert_eq!(client.error("SORT k1 BY w_* foo"), by);
        assert_eq!(client.error("SORT k1 foo BY w_*"), "ERR syntax error");
        assert_eq!(
            client.error("SORT k1 LIMIT x 1 BY w_*"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(proposals(&client), before, "{user}: nothing proposed");
        // A constant BY reads no other key.
        assert_eq!(
            client.reply("SORT_RO k1 BY nosort ASC"),
            client.reply("LRANGE k1 0 -1")
        );
        assert_eq!(client.reply("SORT k1"), sorted);
        assert_eq!(client.reply("MULTI"), Reply::OK);
        assert_eq!(client.reply("SORT k1 BY w_*"), Reply::Simple("QUEUED"));
        assert_eq!(client.reply("SORT k1"), Reply::Simple("QUEUED"));
        assert_eq!(
            client.reply("EXEC"),
            Reply::Array(vec![Reply::Error(by.into()), sorted.clone()])
        );
    }
    // Read access to `*` is enough.
    assert_eq!(client.reply("AUTH r x"), Reply::OK);
    assert_eq!(
        client.reply("SORT_RO k1 BY w_* GET #"),
        Reply::Array(vec![bulk("2"), bulk("3"), bulk("1")])
    );
}

/// CLIENT TRACKING's modes and Redis 7.0.15's error texts, as the session
/// sees them (the node's table is `node/tracking.rs`'s).
#[test]
fn client_tracking_modes_and_errors() {
    let mut client = Client::new();
    assert_eq!(
        client.error("CLIENT CACHING yes"),
        "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"
    );
    assert_eq!(client.reply("CLIENT GETREDIR"), Reply::Integer(-1));
    assert_eq!(client.error("CLIENT TRACKING on bogus"), "ERR syntax error");
    assert_eq!(client.error("CLIENT TRACKING maybe"), "ERR syntax error");
    assert_eq!(
        client.error("CLIENT TRACKING on REDIRECT x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        client.error("CLIENT TRACKING on REDIRECT 12345"),
        "ERR The client ID you want redirect to does not exist"
    );
    assert_eq!(
        client.error("CLIENT TRACKING on PREFIX a"),
        "ERR PREFIX option requires BCAST mode to be enabled"
    );
    assert_eq!(
        client.error("CLIENT TRACKING on BCAST OPTOUT"),
        "ERR OPTIN and OPTOUT are not compatible with BCAST"
    );
    assert_eq!(
        client.error("CLIENT TRACKING on OPTIN OPTOUT"),
        "ERR You can't specify both OPTIN mode and OPTOUT mode"
    );
    assert_eq!(client.reply("CLIENT TRACKING on OPTIN"), Reply::OK);
    assert_eq!(client.reply("CLIENT GETREDIR"), Reply::Integer(0));
    assert_eq!(
        client.error("CLIENT TRACKING on OPTOUT"),
        "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."
    );
    assert_eq!(
        client.error("CLIENT TRACKING on BCAST"),
        "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."
    );
    assert_eq!(
        client.error("CLIENT CACHING no"),
        "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
    );
    assert_eq!(client.reply("CLIENT CACHING yes"), Reply::OK);
    let flags = |client: &mut Client| {
        let Reply::Map(pairs) = client.reply("CLIENT TRACKINGINFO") else {
            panic!("TRACKINGINFO is a map");
        };
        let Reply::Set(flags) = &pairs[0].1 else {
            panic!("flags are a set");
        };
        flags.clone()
    };
    assert_eq!(
        flags(&mut client),
        vec![bulk("on"), bulk("optin"), bulk("caching-yes")]
    );
    // CACHING holds for the next command only.
    assert_eq!(client.reply("PING"), Reply::Simple("PONG"));
    assert_eq!(flags(&mut client), vec![bulk("on"), bulk("optin")]);
    let Reply::Verbatim(info) = client.reply("CLIENT INFO") else {
        panic!("CLIENT INFO is text");
    };
    assert!(info.contains(" flags=t "), "{info}");
    assert!(info.contains(" redir=0 "), "{info}");
    assert_eq!(client.reply("CLIENT TRACKING off"), Reply::OK);
    assert_eq!(flags(&mut client), vec![bulk("off")]);
    assert_eq!(
        client.reply("CLIENT TRACKING on BCAST PREFIX a: PREFIX b:"),
        Reply::OK
    );
    assert_eq!(
        client.error("CLIENT TRACKING on BCAST PREFIX a:x"),
        "ERR Prefix 'a:x' overlaps with an existing prefix 'a:'. Prefixes for a single client must not overlap."
    );
    let Reply::Verbatim(info) = client.reply("CLIENT INFO") else {
        panic!("CLIENT INFO is text");
    };
    assert!(info.contains(" flags=tB "), "{info}");
    assert_eq!(client.reply("RESET"), Reply::Simple("RESET"));
    assert_eq!(client.reply("CLIENT GETREDIR"), Reply::Integer(-1));
}

/// SAVE, BGSAVE and BGREWRITEAOF ask the node for a snapshot and answer in
/// Redis's words for what it said; SAVE is refused inside MULTI.
#[test]
fn save_bgsave_and_bgrewriteaof_ask_for_a_snapshot() {
    let mut client = Client::new();
    assert_eq!(client.reply("SAVE"), Reply::OK);
    // The first is still being written for the fake.
    assert_eq!(
        client.error("SAVE"),
        "ERR Background save already in progress"
    );
    assert_eq!(
        client.error("BGSAVE"),
        "ERR Background save already in progress"
    );
    assert_eq!(
        client.reply("BGSAVE schedule"),
        Reply::Simple("Background saving scheduled")
    );
    assert_eq!(
        client.reply("BGREWRITEAOF"),
        Reply::Simple("Background append only file rewriting scheduled")
    );
    assert_eq!(
        *client.backend.snapshots.lock().unwrap(),
        [false, false, false, true, true]
    );
    assert_eq!(client.error("BGSAVE now"), "ERR syntax error");
    assert_eq!(client.error("BGSAVE schedule x"), "ERR syntax error");
    assert_eq!(client.reply("MULTI"), Reply::OK);
    assert_eq!(
        client.error("SAVE"),
        "ERR Command not allowed inside a transaction"
    );
    assert_eq!(client.reply("BGSAVE"), Reply::Simple("QUEUED"));
    assert!(client.error("EXEC").starts_with("EXECABORT"));
    assert_eq!(client.backend.snapshots.lock().unwrap().len(), 5);

    let mut fresh = Client::new();
    assert_eq!(
        fresh.reply("BGSAVE"),
        Reply::Simple("Background saving started")
    );
    let mut fresh = Client::new();
    assert_eq!(
        fresh.reply("BGREWRITEAOF"),
        Reply::Simple("Background append only file rewriting started")
    );
}

/// SHUTDOWN checks its options as Redis does, asks the process to stop
/// once, and is refused inside MULTI.
#[test]
fn shutdown_checks_its_options_and_asks_once() {
    use crate::server::commands::persistence::Shutdown;
    let mut client = Client::new();
    for bad in [
        "SHUTDOWN x",
        "SHUTDOWN SAVE NOSAVE",
        "SHUTDOWN ABORT NOW",
        "SHUTDOWN NOW ABORT",
    ] {
        assert_eq!(client.error(bad), "ERR syntax error", "{bad}");
    }
    assert_eq!(
        client.error("SHUTDOWN ABORT"),
        "ERR No shutdown in progress."
    );
    assert_eq!(client.reply("MULTI"), Reply::OK);
    assert_eq!(
        client.error("SHUTDOWN"),
        "ERR Command not allowed inside a transaction"
    );
    assert_eq!(client.reply("DISCARD"), Reply::OK);
    assert!(client.backend.shutdowns.lock().unwrap().is_empty());
    let executed = client.run("shutdown now save force");
    assert!(executed.close, "the connection closes without a reply");
    assert_eq!(
        *client.backend.shutdowns.lock().unwrap(),
        [Shutdown {
            now: true,
            save: true
        }]
    );
    assert_eq!(
        client.error("SHUTDOWN NOSAVE"),
        "ERR Errors trying to SHUTDOWN. Check logs."
    );
}

/// MODULE, LOLWUT, REPLICAOF and the replication handshake answer as
/// described in their modules; RESTORE-ASKING restores as RESTORE does.
#[test]
fn module_lolwut_replicaof_and_restore_asking() {
    let mut client = Client::new();
    assert_eq!(client.reply("MODULE LIST"), Reply::Array(vec![]));
    assert!(matches!(client.reply("MODULE HELP"), Reply::Array(lines) if lines.len() == 11));
    for refused in [
        "MODULE LOAD /x.so",
        "MODULE LOADEX /x.so ARGS a",
        "MODULE UNLOAD m",
    ] {
        assert!(
            client
                .error(refused)
                .starts_with("ERR MODULE command not allowed."),
            "{refused}"
        );
    }
    assert_eq!(
        client.error("MODULE nosuch"),
        "ERR unknown subcommand 'nosuch'. Try MODULE HELP."
    );
    assert_eq!(
        client.reply("LOLWUT VERSION 5"),
        Reply::Verbatim("Redis ver. 7.0.0\n".to_string())
    );
    assert_eq!(
        client.error("LOLWUT VERSION x"),
        "ERR value is not an integer or out of range"
    );
    // The fake leads: NO ONE is what it is already.
    assert_eq!(client.reply("REPLICAOF no one"), Reply::OK);
    assert!(client
        .error("SLAVEOF 127.0.0.1 6379")
        .starts_with("ERR SLAVEOF is not allowed in dkv"));
    client.backend.role = crate::raft::Role::Follower;
    assert!(client
        .error("REPLICAOF NO ONE")
        .starts_with("ERR REPLICAOF is not allowed in dkv"));
    for handshake in ["SYNC", "PSYNC ? -1", "REPLCONF listening-port 1"] {
        let name = handshake.split(' ').next().unwrap();
        assert_eq!(
            client.error(handshake),
            format!("ERR {name} is not supported: dkv nodes replicate through Raft and serve no Redis replication stream")
        );
    }
    client.backend.role = crate::raft::Role::Leader;
    assert_eq!(client.reply("SET k v"), Reply::OK);
    let Reply::Bulk(payload) = client.reply("DUMP k") else {
        panic!("DUMP gives a payload")
    };
    let args = [
        Bytes::from_static(b"RESTORE-ASKING"),
        Bytes::from_static(b"k2"),
        Bytes::from_static(b"0"),
        payload,
    ];
    let executed =
        futures_util::FutureExt::now_or_never(execute(&client.backend, &mut client.session, &args))
            .expect("the fake backend never waits");
    assert_eq!(executed.reply, Reply::OK);
    assert_eq!(client.reply("GET k2"), bulk("v"));
}
