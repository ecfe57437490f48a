//! The registry of open client connections: what `CLIENT LIST` shows and what
//! `CLIENT KILL` closes.
//!
//! Each connection registers when accepted and gets a [`ClientView`] behind
//! its own mutex, which its connection refreshes once per batch of requests,
//! before the batch's replies are written (an uncontended lock: only
//! `CLIENT LIST`/`KILL` read other connections' views), and a kill switch:
//! the `watch` flag its connection loop already watches for shutdown, so a
//! killed connection closes after the batch it is executing, as Redis closes
//! a killed client asynchronously. The registry's
//! own lock is taken only to register, deregister, list and kill.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use crate::server::command::Session;

/// What `CLIENT LIST` shows of one connection.
#[derive(Clone, Debug)]
pub struct ClientView {
    /// Client id.
    pub id: u64,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// Our address on the connection.
    pub local: Option<SocketAddr>,
    /// The socket's file descriptor (-1 when unknown).
    pub fd: i64,
    /// When the connection was accepted.
    pub connected_at: Instant,
    /// When it last ran a command.
    pub last_active: Instant,
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
    /// Selected database.
    pub db: u8,
    /// Channels, patterns and shard channels subscribed to (`sub`, `psub`,
    /// `ssub`), as of the last confirmation sent.
    pub subscriptions: [i64; 3],
    /// Queued commands inside MULTI, -1 outside.
    pub multi: i64,
    /// Watched keys.
    pub watch: usize,
    /// `READONLY` connection.
    pub readonly: bool,
    /// Last command (`client|list` for subcommands).
    pub cmd: &'static str,
    /// RESP version.
    pub resp: i64,
    /// The ACL user (`user=`, `CLIENT KILL USER`).
    pub user: Bytes,
    /// `CLIENT TRACKING` flag letters (`t`, `R`, `B`).
    pub tracking: String,
    /// `redir=`: the tracking redirection (-1 when tracking is off).
    pub redir: i64,
}

impl ClientView {
    /// The view of `session` now (`fd` as registered).
    pub fn of(session: &Session, fd: i64) -> ClientView {
        let (tracking, redir) = crate::server::tracking::client_fields(session);
        ClientView {
            tracking,
            redir,
            id: session.id,
            peer: session.peer,
            local: session.local,
            fd,
            connected_at: session.connected_at,
            last_active: Instant::now(),
            name: session.name.clone(),
            lib_name: session.lib_name.clone(),
            lib_ver: session.lib_ver.clone(),
            db: session.db,
            subscriptions: [
                session.subscriptions - session.pattern_subscriptions,
                session.pattern_subscriptions,
                session.shard_subscriptions,
            ],
            multi: session.multi.as_ref().map_or(-1, |q| q.len() as i64),
            watch: session.watched.len(),
            readonly: session.readonly,
            cmd: session.last_command,
            resp: session.protocol.version(),
            user: session.user.clone(),
        }
    }

    /// Holds a subscription: Redis's `P` flag and `pubsub` client type.
    pub fn pubsub(&self) -> bool {
        self.subscriptions.iter().any(|&n| n > 0)
    }

    /// Redis's `addr` field (`ip:port`, `[ipv6]:port`).
    pub fn addr(&self) -> String {
        self.peer.map(|a| a.to_string()).unwrap_or_default()
    }

    /// Redis's `laddr` field.
    pub fn laddr(&self) -> String {
        self.local.map(|a| a.to_string()).unwrap_or_default()
    }

    /// One `CLIENT LIST` / `CLIENT INFO` line, newline included, with Redis
    /// 7.2's fields in Redis's order. Buffer sizes dkv does not track are 0.
    pub fn line(&self, now: Instant) -> String {
        let text = |v: &Option<Bytes>| {
            v.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        // Redis's order: P, x, then the tracking letters, then r; N for
        // none. P: holds a subscription (any protocol, as in Redis 7.0).
        let mut flags = String::new();
        if self.pubsub() {
            flags.push('P');
        }
        if self.multi >= 0 {
            flags.push('x');
        }
        flags.push_str(&self.tracking);
        if self.readonly {
            flags.push('r');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}\n",
            self.id,
            self.addr(),
            self.laddr(),
            self.fd,
            text(&self.name),
            now.saturating_duration_since(self.connected_at).as_secs(),
            now.saturating_duration_since(self.last_active).as_secs(),
            flags,
            self.db,
            self.subscriptions[0],
            self.subscriptions[1],
            self.subscriptions[2],
            self.multi,
            self.cmd,
            String::from_utf8_lossy(&self.user),
            self.redir,
            self.resp,
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}

/// A connection's shared view and its registration.
#[derive(Debug)]
pub struct ClientShared {
    view: Mutex<ClientView>,
}

impl ClientShared {
    fn lock(&self) -> MutexGuard<'_, ClientView> {
        // A view is plain data: a panic mid-update leaves it usable.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes the view from the session (once per batch of requests).
    pub fn publish(&self, session: &Session) {
        let mut view = self.lock();
        let fd = view.fd;
        *view = ClientView::of(session, fd);
    }

    /// The registered file descriptor.
    pub fn fd(&self) -> i64 {
        self.lock().fd
    }
}

struct Registered {
    shared: Arc<ClientShared>,
    kill: watch::Sender<bool>,
}

/// The open connections of one listener.
#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Registered>>,
}

/// Removes its connection from the registry when dropped.
pub struct Registration {
    registry: Arc<ClientRegistry>,
    id: u64,
    /// The view the session publishes to.
    pub shared: Arc<ClientShared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl ClientRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Registered>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `session`'s connection; `kill` is the flag its connection
    /// loop watches. Deregistered when the returned guard drops.
    pub fn register(
        self: &Arc<Self>,
        session: &Session,
        fd: i64,
        kill: watch::Sender<bool>,
    ) -> Registration {
        let shared = Arc::new(ClientShared {
            view: Mutex::new(ClientView::of(session, fd)),
        });
        self.lock().insert(
            session.id,
            Registered {
                shared: shared.clone(),
                kill,
            },
        );
        Registration {
            registry: self.clone(),
            id: session.id,
            shared,
        }
    }

    /// Every connection's view, by id.
    pub fn views(&self) -> Vec<ClientView> {
        let shared: Vec<Arc<ClientShared>> =
            self.lock().values().map(|r| r.shared.clone()).collect();
        shared.iter().map(|s| s.lock().clone()).collect()
    }

    /// Closes every connection whose view `matches`; returns how many. A
    /// killed connection leaves the registry at once, as Redis frees a
    /// killed client before answering: the next `CLIENT LIST` or `CLIENT
    /// KILL` does not see it, though its task may still be closing.
    pub fn kill(&self, matches: impl Fn(&ClientView) -> bool) -> usize {
        let mut clients = self.lock();
        let before = clients.len();
        clients.retain(|_, registered| {
            let view = registered.shared.lock().clone();
            if matches(&view) {
                let _ = registered.kill.send(true);
                return false;
            }
            true
        });
        before - clients.len()
    }

    /// Closes every connection (graceful shutdown).
    pub fn kill_all(&self) -> usize {
        self.kill(|_| true)
    }

    /// `CLIENT LIST`'s text for every connection, by id (what the
    /// operator route `/admin/clients` serves).
    pub fn list(&self) -> String {
        let now = Instant::now();
        self.views().iter().map(|view| view.line(now)).collect()
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use tokio::sync::watch;

    use super::*;
    use crate::kv::KvInfo;
    use crate::node::NodeStatus;
    use crate::server::command::fake::FakeBackend;
    use crate::server::command::{Action, CommandError, Env};
    use crate::server::commands::connection::{client_kill, client_list};
    use crate::server::info::ServerFacts;
    use crate::server::reply::Reply;

    struct WithRegistry {
        fake: FakeBackend,
        registry: Arc<ClientRegistry>,
    }

    impl Env for WithRegistry {
        fn facts(&self) -> &ServerFacts {
            self.fake.facts()
        }
        fn status(&self) -> NodeStatus {
            self.fake.status()
        }
        fn kv_info(&self) -> KvInfo {
            self.fake.kv_info()
        }
        fn connected_clients(&self) -> usize {
            self.registry.len()
        }
        fn clients(&self) -> Option<&ClientRegistry> {
            Some(&self.registry)
        }
    }

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    struct Conn {
        session: Session,
        killed: watch::Receiver<bool>,
        _registration: Registration,
    }

    fn connect(registry: &Arc<ClientRegistry>, id: u64, port: u16) -> Conn {
        let peer = format!("127.0.0.1:{port}").parse().ok();
        let local = "127.0.0.1:6379".parse().ok();
        let mut session = Session::new(id, peer, local);
        let (kill, killed) = watch::channel(false);
        let registration = registry.register(&session, 10 + id as i64, kill);
        session.client = Some(registration.shared.clone());
        Conn {
            session,
            killed,
            _registration: registration,
        }
    }

    fn text(action: Result<Action, CommandError>) -> String {
        match action {
            Ok(Action::Reply(Reply::Verbatim(t))) => t,
            Ok(_) => panic!("expected text"),
            Err(e) => panic!("{e}"),
        }
    }

    fn reply(action: Result<Action, CommandError>) -> Reply {
        match action {
            Ok(Action::Reply(r)) => r,
            Ok(_) => panic!("expected a reply"),
            Err(e) => e.into(),
        }
    }

    #[test]
    fn client_line_has_redis_fields_in_redis_order() {
        let registry = Arc::new(ClientRegistry::default());
        let conn = connect(&registry, 3, 5000);
        let line = ClientView::of(&conn.session, 13).line(Instant::now());
        let keys: Vec<&str> = line
            .trim_end()
            .split(' ')
            .map(|f| f.split('=').next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "addr",
                "laddr",
                "fd",
                "name",
                "age",
                "idle",
                "flags",
                "db",
                "sub",
                "psub",
                "ssub",
                "multi",
                "qbuf",
                "qbuf-free",
                "argv-mem",
                "multi-mem",
                "rbs",
                "rbp",
                "obl",
                "oll",
                "omem",
                "tot-mem",
                "events",
                "cmd",
                "user",
                "redir",
                "resp",
                "lib-name",
                "lib-ver"
            ]
        );
        assert!(
            line.starts_with("id=3 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=13 name= age=0 idle=0 flags=N db=0 "),
            "{line}"
        );
        assert!(line.ends_with(" cmd=NULL user=default redir=-1 resp=2 lib-name= lib-ver=\n"));
    }

    #[test]
    fn client_list_shows_every_registered_connection() {
        let registry = Arc::new(ClientRegistry::default());
        let env = WithRegistry {
            fake: FakeBackend::new(),
            registry: registry.clone(),
        };
        let mut a = connect(&registry, 1, 5001);
        let mut b = connect(&registry, 2, 5002);
        b.session.name = Some(Bytes::from_static(b"bee"));
        b.session.db = 4;
        b.session.last_command = "client|setname";
        if let Some(client) = &b.session.client {
            client.publish(&b.session);
        }
        let all = text(client_list(&mut a.session, &env, &args("CLIENT LIST")));
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 2, "{all}");
        assert!(lines[0].starts_with("id=1 addr=127.0.0.1:5001 "), "{all}");
        assert!(lines[1].starts_with("id=2 addr=127.0.0.1:5002 "), "{all}");
        assert!(lines[1].contains(" name=bee "), "{all}");
        assert!(lines[1].contains(" db=4 "), "{all}");
        assert!(lines[1].contains(" cmd=client|setname "), "{all}");
        let one = text(client_list(
            &mut a.session,
            &env,
            &args("CLIENT LIST ID 2 -1 0"),
        ));
        assert!(
            one.starts_with("id=2 ") && one.lines().count() == 1,
            "{one}"
        );
        assert_eq!(
            text(client_list(
                &mut a.session,
                &env,
                &args("CLIENT LIST TYPE pubsub")
            )),
            ""
        );
        assert_eq!(
            text(client_list(
                &mut a.session,
                &env,
                &args("CLIENT LIST TYPE normal")
            ))
            .lines()
            .count(),
            2
        );
        // A subscriber (2 channels, 1 pattern, 1 shard channel) is of the
        // `pubsub` type, with Redis's P flag and counts.
        b.session.subscriptions = 3;
        b.session.pattern_subscriptions = 1;
        b.session.shard_subscriptions = 1;
        if let Some(client) = &b.session.client {
            client.publish(&b.session);
        }
        let subscribers = text(client_list(
            &mut a.session,
            &env,
            &args("CLIENT LIST TYPE pubsub"),
        ));
        assert!(subscribers.starts_with("id=2 "), "{subscribers}");
        assert!(
            subscribers.contains(" flags=P db=4 sub=2 psub=1 ssub=1 multi=-1 "),
            "{subscribers}"
        );
        let normal = text(client_list(
            &mut a.session,
            &env,
            &args("CLIENT LIST TYPE normal"),
        ));
        assert!(normal.starts_with("id=1 ") && normal.lines().count() == 1);
        assert_eq!(
            reply(client_list(&mut a.session, &env, &args("CLIENT LIST ID x"))),
            Reply::error("ERR Invalid client ID")
        );
        assert_eq!(
            reply(client_list(
                &mut a.session,
                &env,
                &args("CLIENT LIST TYPE foo")
            )),
            Reply::error("ERR Unknown client type 'foo'")
        );
        drop(b);
        assert_eq!(
            text(client_list(&mut a.session, &env, &args("CLIENT LIST")))
                .lines()
                .count(),
            1,
            "a closed connection leaves the registry"
        );
    }

    #[test]
    fn client_kill_flags_exactly_the_matching_connections() {
        let registry = Arc::new(ClientRegistry::default());
        let env = WithRegistry {
            fake: FakeBackend::new(),
            registry: registry.clone(),
        };
        let mut a = connect(&registry, 1, 5001);
        let b = connect(&registry, 2, 5002);
        let c = connect(&registry, 3, 5003);
        let mut kill = |line: &str| reply(client_kill(&mut a.session, &env, &args(line)));
        assert_eq!(kill("CLIENT KILL ID 99"), Reply::Integer(0));
        assert_eq!(kill("CLIENT KILL ID 2"), Reply::Integer(1));
        assert!(*b.killed.borrow() && !*c.killed.borrow() && !*a.killed.borrow());
        assert_eq!(kill("CLIENT KILL 127.0.0.1:5003"), Reply::OK);
        assert!(*c.killed.borrow());
        assert_eq!(
            kill("CLIENT KILL 127.0.0.1:9"),
            Reply::error("ERR No such client")
        );
        // Killed connections are gone at once (CI caught CLIENT LIST still
        // showing one whose socket had closed).
        let ids: Vec<u64> = registry.views().iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![1]);
        assert_eq!(kill("CLIENT KILL ID 2"), Reply::Integer(0));
        let _d = connect(&registry, 4, 5004);
        let _e = connect(&registry, 5, 5005);
        let mut kill = |line: &str| reply(client_kill(&mut a.session, &env, &args(line)));
        // SKIPME yes (the default) spares the caller.
        assert_eq!(kill("CLIENT KILL LADDR 127.0.0.1:6379"), Reply::Integer(2));
        assert!(!*a.killed.borrow());
        assert_eq!(
            kill("CLIENT KILL ADDR 127.0.0.1:5001 SKIPME no"),
            Reply::Integer(1)
        );
        assert!(*a.killed.borrow());
        for (line, error) in [
            ("CLIENT KILL ID x", "ERR client-id should be greater than 0"),
            ("CLIENT KILL ID 0", "ERR client-id should be greater than 0"),
            ("CLIENT KILL TYPE foo", "ERR Unknown client type 'foo'"),
            ("CLIENT KILL USER nobody", "ERR No such user 'nobody'"),
            ("CLIENT KILL SKIPME maybe", "ERR syntax error"),
            ("CLIENT KILL MAXAGE 1", "ERR syntax error"),
            ("CLIENT KILL ID 1 ADDR", "ERR syntax error"),
        ] {
            assert_eq!(kill(line), Reply::error(error), "{line}");
        }
        assert_eq!(kill("CLIENT KILL TYPE master SKIPME no"), Reply::Integer(0));
        let _f = connect(&registry, 6, 5006);
        let mut kill = |line: &str| reply(client_kill(&mut a.session, &env, &args(line)));
        assert_eq!(kill("CLIENT KILL USER default ID 6"), Reply::Integer(1));
    }
}
