//! `CLUSTER ...` and `ASKING`: the Raft group as cluster-aware clients
//! (redis-py `RedisCluster`, ioredis `Cluster`, `redis-cli -c`) expect to
//! find it — one Redis Cluster shard that owns all 16384 slots.
//!
//! What is presented, on every node alike:
//! - **Master**: the Raft leader. **Replicas**: the other members, voters
//!   and learners, in id order. Addresses are the RESP addresses of the
//!   membership in effect on the node asked (the configuration's `peers` at
//!   bootstrap, then what `dkv-cli member add|move` recorded in the log), so
//!   the topology follows membership changes as soon as the node has the
//!   change in its log; this node's own `resp_addr`, when it is a wildcard such as
//!   `0.0.0.0`, is shown as the address the client connected to. The cluster
//!   bus port (`CLUSTER NODES`' `@port`) is the member's HTTP (peer RPC)
//!   port.
//! - **Names**: a node's id is the SHA-1 of the cluster id and its Raft id,
//!   40 hex characters, the same on every node and across restarts; the
//!   shard id likewise of the cluster id. **Epochs** are the Raft term.
//! - **Between terms** (an election under way, no leader known), the last
//!   leader this node knew is still shown as master. A client that sends it
//!   a command then gets its answer, a `MOVED` to the new leader,
//!   `CLUSTERDOWN No raft leader`, or a refused connection if it died; redis-py
//!   and ioredis answer each of those by refreshing the topology and
//!   retrying, so they follow the new leader once it is elected. Erroring
//!   instead (`CLUSTERDOWN`) would make redis-py drop the node as "not in
//!   cluster mode" for that refresh and fail outright when every node says
//!   so during the election. Before this node has known any leader, no slot
//!   has a master: `CLUSTER SLOTS` is empty and `CLUSTER INFO` says
//!   `cluster_state:fail`, as a Redis cluster with unassigned slots does.
//! - Every member is shown `connected`/`online`: followers do not know each
//!   other's health, and answers must not depend on which node is asked. A
//!   dead replica is therefore still listed; clients reading from replicas
//!   get a connection error from it and move on.
//! - `COUNTKEYSINSLOT` / `GETKEYSINSLOT` are reads of the session's
//!   database, linearizable like any read (local on a `READONLY`
//!   connection). They walk the keys (no index per slot is kept), O(keys)
//!   like `KEYS`, holding the map's read lock meanwhile; `GETKEYSINSLOT`
//!   answers in key order.
//! - What changes the topology (ADDSLOTS, MEET, FAILOVER, RESET, ...) is
//!   refused with an error saying why: membership and leadership are Raft's.
//! - `ASKING` answers `+OK` and changes nothing: no slot ever migrates.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::cmd::slot::{key_slot, SLOTS};
use crate::node::{Member, Membership, NodeStatus};
use crate::raft::{NodeId, Role};
use crate::server::command::{parse_i64, Action, CommandError, Env, Session};
use crate::server::reply::Reply;

/// The lower-case hex SHA-1 of `text`.
fn sha1_name(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(40), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The 40-hex-character name of Raft member `id` of cluster `cluster_id`.
pub fn node_name(cluster_id: &str, id: NodeId) -> String {
    sha1_name(&format!("dkv node {cluster_id} {}", id.0))
}

/// The 40-hex-character id of the one shard of cluster `cluster_id`.
pub fn shard_name(cluster_id: &str) -> String {
    sha1_name(&format!("dkv shard {cluster_id}"))
}

/// One member as the replies show it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeView {
    /// Its 40-hex-character name.
    name: String,
    ip: String,
    port: u16,
    bus_port: u16,
    /// How far its log is known to reach (`replication-offset`).
    offset: u64,
    /// The node answering.
    myself: bool,
    master: bool,
}

/// The shard as this node presents it to one client.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    shard: String,
    /// The master first (when there is one), then the replicas in id order.
    nodes: Vec<NodeView>,
    /// True when a master is shown.
    has_master: bool,
    /// The leader is this term's, not only the last one known.
    leader_now: bool,
    /// The Raft term (epochs).
    term: u64,
}

impl View {
    /// The view for a client connected at `local`.
    fn new(status: &NodeStatus, membership: &Membership, local: Option<SocketAddr>) -> View {
        let master = membership.last_leader;
        let mut nodes: Vec<NodeView> = membership
            .members
            .iter()
            .map(|member| node_view(status, membership, member, local))
            .collect();
        // The master first, the replicas after it in id order (a stable sort).
        nodes.sort_by_key(|n| !n.master);
        View {
            shard: shard_name(&membership.cluster_id),
            has_master: master.is_some_and(|m| membership.members.iter().any(|x| x.id == m)),
            leader_now: status.leader.is_some(),
            term: status.term.0,
            nodes,
        }
    }

    /// The view in `env` for this session.
    fn of(env: &dyn Env, session: &Session) -> View {
        let status = env.status();
        let membership = env.membership().unwrap_or_else(|| alone(env, &status));
        View::new(&status, &membership, session.local)
    }

    fn master(&self) -> Option<&NodeView> {
        self.nodes.first().filter(|n| self.has_master && n.master)
    }

    fn myself(&self) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.myself)
    }

    fn find(&self, name: &[u8]) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.name.as_bytes() == name)
    }
}

/// This node alone, for an environment without a node (unit tests of
/// other modules).
fn alone(env: &dyn Env, status: &NodeStatus) -> Membership {
    let facts = env.facts();
    let loopback = IpAddr::from([127, 0, 0, 1]);
    Membership {
        cluster_id: "dkv".to_string(),
        members: vec![Member {
            id: status.id,
            voter: true,
            resp_addr: SocketAddr::new(loopback, facts.tcp_port),
            http_addr: facts
                .http_addr
                .unwrap_or_else(|| SocketAddr::new(loopback, 0)),
        }],
        last_leader: status.leader,
    }
}

fn node_view(
    status: &NodeStatus,
    membership: &Membership,
    member: &Member,
    local: Option<SocketAddr>,
) -> NodeView {
    let myself = member.id == status.id;
    let master = membership.last_leader == Some(member.id);
    let mut ip = member.resp_addr.ip();
    if myself && ip.is_unspecified() {
        if let Some(local) = local {
            ip = local.ip().to_canonical();
        }
    }
    // What this node knows of each log: its own; as leader, each
    // follower's match index; as follower, the leader's commit index.
    let offset = if myself {
        if status.role == Role::Leader {
            status.last_log_index.0
        } else {
            status.last_applied.0
        }
    } else if let Some(f) = status.followers.iter().find(|f| f.id == member.id) {
        f.match_index.0
    } else if master {
        status.commit_index.0
    } else {
        0
    };
    NodeView {
        name: node_name(&membership.cluster_id, member.id),
        ip: ip.to_string(),
        port: member.resp_addr.port(),
        bus_port: member.http_addr.port(),
        offset,
        myself,
        master,
    }
}

/// `CLUSTER SLOTS`: `[[0, 16383, master, replica...]]`, each node as
/// `[ip, port, id, {}]` (the map of extra endpoint metadata is empty).
fn slots_reply(view: &View) -> Reply {
    if view.master().is_none() {
        return Reply::Array(Vec::new());
    }
    let mut range = vec![Reply::Integer(0), Reply::Integer(i64::from(SLOTS - 1))];
    range.extend(view.nodes.iter().map(|n| {
        Reply::Array(vec![
            Reply::bulk_str(&n.ip),
            Reply::Integer(i64::from(n.port)),
            Reply::bulk_str(&n.name),
            Reply::Map(Vec::new()),
        ])
    }));
    Reply::Array(vec![Reply::Array(range)])
}

fn pair(key: &'static str, value: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(key), value)
}

/// `CLUSTER SHARDS`: one shard, its slot range and its nodes, each a map
/// in Redis 7.0's field order.
fn shards_reply(view: &View) -> Reply {
    let slots = if view.master().is_some() {
        vec![Reply::Integer(0), Reply::Integer(i64::from(SLOTS - 1))]
    } else {
        Vec::new()
    };
    let nodes = view
        .nodes
        .iter()
        .map(|n| {
            let role = if n.master && view.has_master {
                "master"
            } else {
                "replica"
            };
            Reply::Map(vec![
                pair("id", Reply::bulk_str(&n.name)),
                pair("port", Reply::Integer(i64::from(n.port))),
                pair("ip", Reply::bulk_str(&n.ip)),
                pair("endpoint", Reply::bulk_str(&n.ip)),
                pair("role", Reply::bulk_str(role)),
                pair(
                    "replication-offset",
                    Reply::Integer(i64::try_from(n.offset).unwrap_or(i64::MAX)),
                ),
                pair("health", Reply::bulk_str("online")),
            ])
        })
        .collect();
    Reply::Array(vec![Reply::Map(vec![
        pair("slots", Reply::Array(slots)),
        pair("nodes", Reply::Array(nodes)),
    ])])
}

/// One `CLUSTER NODES` line (without its newline): id, `ip:port@bus`,
/// flags, master id, ping sent, pong received (ms), config epoch, link
/// state, slots.
fn node_line(view: &View, node: &NodeView, now_ms: u64) -> String {
    let is_master = node.master && view.has_master;
    let role = if is_master { "master" } else { "slave" };
    let flags = if node.myself {
        format!("myself,{role}")
    } else {
        role.to_string()
    };
    let master_id = match view.master() {
        Some(master) if !is_master => master.name.as_str(),
        _ => "-",
    };
    let slots = if is_master {
        format!(" 0-{}", SLOTS - 1)
    } else {
        String::new()
    };
    format!(
        "{} {}:{}@{} {flags} {master_id} 0 {now_ms} {} connected{slots}",
        node.name, node.ip, node.port, node.bus_port, view.term
    )
}

/// `CLUSTER NODES`: every member's line, each ending in a newline.
fn nodes_text(view: &View, now_ms: u64) -> String {
    view.nodes
        .iter()
        .map(|n| node_line(view, n, now_ms) + "\n")
        .collect()
}

/// `CLUSTER INFO`, Redis 7.0's fields (no bus messages are counted: the
/// peers talk over HTTP).
fn info_text(view: &View) -> String {
    let assigned = if view.master().is_some() { SLOTS } else { 0 };
    let (ok, pfail) = if view.leader_now {
        (assigned, 0)
    } else {
        (0, assigned)
    };
    let state = if view.leader_now && assigned > 0 {
        "ok"
    } else {
        "fail"
    };
    format!(
        "cluster_state:{state}\r\n\
         cluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:{pfail}\r\n\
         cluster_slots_fail:0\r\n\
         cluster_known_nodes:{}\r\n\
         cluster_size:{}\r\n\
         cluster_current_epoch:{term}\r\n\
         cluster_my_epoch:{term}\r\n\
         cluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n",
        view.nodes.len(),
        u8::from(assigned > 0),
        term = view.term,
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn slots(session: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(slots_reply(&View::of(env, session))))
}

pub fn shards(session: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(shards_reply(&View::of(env, session))))
}

pub fn nodes(session: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let view = View::of(env, session);
    Ok(Action::Reply(Reply::Verbatim(nodes_text(&view, now_ms()))))
}

pub fn info(session: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Verbatim(info_text(&View::of(
        env, session,
    )))))
}

pub fn myid(session: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let view = View::of(env, session);
    let me = view.myself().map_or("", |n| n.name.as_str());
    Ok(Action::Reply(Reply::bulk_str(me)))
}

pub fn myshardid(
    session: &mut Session,
    env: &dyn Env,
    _: &[Bytes],
) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::bulk_str(
        &View::of(env, session).shard,
    )))
}

pub fn keyslot(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::Integer(i64::from(key_slot(&args[2])))))
}

/// A slot argument: an integer (Redis's `long long` parse), then a range
/// check answered with `invalid`.
fn parse_slot(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

fn in_range(slot: i64) -> Option<u16> {
    u16::try_from(slot).ok().filter(|&s| s < SLOTS)
}

pub fn countkeysinslot(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let slot = in_range(parse_slot(&args[2])?)
        .ok_or_else(|| CommandError::Data("ERR Invalid slot".to_string()))?;
    let db = usize::from(session.db);
    Ok(Action::Read(Box::new(move |map, ctx| {
        let count = map
            .live_keys(db, ctx.now_ms)
            .filter(|k| key_slot(k) == slot)
            .count();
        Reply::Integer(i64::try_from(count).unwrap_or(i64::MAX))
    })))
}

pub fn getkeysinslot(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let slot = parse_slot(&args[2])?;
    let count = parse_i64(&args[3]).ok_or(CommandError::NotInteger)?;
    let (Some(slot), Ok(count)) = (in_range(slot), usize::try_from(count)) else {
        return Err(CommandError::Data(
            "ERR Invalid slot or number of keys".to_string(),
        ));
    };
    let db = usize::from(session.db);
    Ok(Action::Read(Box::new(move |map, ctx| {
        Reply::Array(
            map.live_keys(db, ctx.now_ms)
                .filter(|k| key_slot(k) == slot)
                .take(count)
                .map(|k| Reply::Bulk(Bytes::copy_from_slice(k)))
                .collect(),
        )
    })))
}

/// `CLUSTER REPLICAS|SLAVES <node-id>`: the replicas' `NODES` lines.
pub fn replicas(
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let view = View::of(env, session);
    let Some(node) = view.find(&args[2]) else {
        return Err(unknown_node(&args[2]));
    };
    if !(node.master && view.has_master) {
        return Err(CommandError::Data(
            "ERR The specified node is not a master".to_string(),
        ));
    }
    let now = now_ms();
    Ok(Action::Reply(Reply::Array(
        view.nodes
            .iter()
            .filter(|n| !n.master)
            .map(|n| Reply::Bulk(Bytes::from(node_line(&view, n, now))))
            .collect(),
    )))
}

/// `CLUSTER COUNT-FAILURE-REPORTS <node-id>`: 0 for a member (dkv's
/// members report no failures to each other), Redis's error otherwise.
pub fn count_failure_reports(
    session: &mut Session,
    env: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    match View::of(env, session).find(&args[2]) {
        Some(_) => Ok(Action::Reply(Reply::Integer(0))),
        None => Err(unknown_node(&args[2])),
    }
}

fn unknown_node(name: &[u8]) -> CommandError {
    CommandError::Data(format!(
        "ERR Unknown node {}",
        crate::server::command::preview(name, 128)
    ))
}

/// The error for a subcommand that would change the topology.
pub fn refused(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_uppercase();
    let how = match sub.as_str() {
        "FAILOVER" => "leadership moves by Raft election or `dkv-cli transfer-leader`",
        "LINKS" => "peers talk over HTTP, not a cluster bus; see each node's /status",
        _ => "membership is managed by dkv and the one shard always owns all 16384 slots",
    };
    Err(CommandError::Data(format!(
        "ERR CLUSTER {sub} is not supported by dkv: {how}"
    )))
}

pub fn asking(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::OK))
}

pub fn help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    super::connection::help(&[
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "COUNTKEYSINSLOT <slot>",
        "    Return the number of keys in <slot>.",
        "COUNT-FAILURE-REPORTS <node-id>",
        "    Return number of failure reports for <node-id>.",
        "GETKEYSINSLOT <slot> <count>",
        "    Return key names stored by current node in a slot.",
        "INFO",
        "    Return information about the cluster.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "MYID",
        "    Return the node id.",
        "MYSHARDID",
        "    Return the node's shard id.",
        "NODES",
        "    Return cluster configuration seen by node. Output format:",
        "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
        "REPLICAS <node-id>",
        "    Return <node-id> replicas.",
        "SLOTS",
        "    Return information about slots range mappings. Each range is made of:",
        "    start, end, master and replicas IP addresses, ports and ids",
        "SHARDS",
        "    Return information about slot range mappings and the nodes associated with them.",
        "HELP",
        "    Prints this help.",
        "dkv presents its Raft group as one shard owning all 16384 slots, the leader",
        "as master: ADDSLOTS, DELSLOTS, MEET, FORGET, REPLICATE, FAILOVER, RESET,",
        "SETSLOT and the other topology changes are refused.",
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::FollowerStatus;
    use crate::raft::{LogIndex, Term};
    use crate::server::reply::Protocol;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn membership(last_leader: Option<u64>) -> Membership {
        Membership {
            cluster_id: "test".into(),
            members: (1..=3)
                .map(|id| Member {
                    id: NodeId(id),
                    voter: true,
                    resp_addr: addr(7000 + id as u16),
                    http_addr: addr(8000 + id as u16),
                })
                .collect(),
            last_leader: last_leader.map(NodeId),
        }
    }

    fn status(me: u64, leader: Option<u64>) -> NodeStatus {
        let role = if leader == Some(me) {
            Role::Leader
        } else {
            Role::Follower
        };
        NodeStatus {
            id: NodeId(me),
            role,
            term: Term(7),
            leader: leader.map(NodeId),
            last_leader: leader.map(NodeId),
            leader_resp_addr: None,
            commit_index: LogIndex(40),
            last_applied: LogIndex(39),
            last_log_index: LogIndex(41),
            loading: false,
            leader_changes: 2,
            snapshot_index: LogIndex(0),
            voters: 3,
            followers: if role == Role::Leader {
                [(1, 41), (2, 30), (3, 12)]
                    .into_iter()
                    .filter(|(id, _)| *id != me)
                    .map(|(id, at)| FollowerStatus {
                        id: NodeId(id),
                        match_index: LogIndex(at),
                        last_heard_secs: 0,
                        resp_addr: Some(addr(7000 + id as u16)),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            learners: Vec::new(),
        }
    }

    fn name(id: u64) -> String {
        node_name("test", NodeId(id))
    }

    fn resp2(reply: &Reply) -> String {
        String::from_utf8_lossy(&reply.to_bytes(Protocol::Resp2)).into_owned()
    }

    fn resp3(reply: &Reply) -> String {
        String::from_utf8_lossy(&reply.to_bytes(Protocol::Resp3)).into_owned()
    }

    /// Names are 40 lower-case hex characters, stable, and differ between
    /// members, clusters and the shard.
    #[test]
    fn names_are_stable_40_hex_characters() {
        let one = node_name("test", NodeId(1));
        assert_eq!(one.len(), 40);
        assert!(one
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(one, node_name("test", NodeId(1)));
        assert_ne!(one, node_name("test", NodeId(2)));
        assert_ne!(one, node_name("prod", NodeId(1)));
        assert_eq!(shard_name("test").len(), 40);
        assert_ne!(shard_name("test"), shard_name("prod"));
        assert_ne!(shard_name("test"), one);
    }

    /// CLUSTER SLOTS has Redis 7.0's shape: one range, the leader first,
    /// each node `[ip, port, id, metadata]` with an empty metadata map
    /// (`*0` in RESP2, `%0` in RESP3), whichever node answers.
    #[test]
    fn slots_shows_the_leader_then_the_other_voters() {
        for me in 1..=3 {
            let view = View::new(&status(me, Some(2)), &membership(Some(2)), None);
            let node = |id: u64| {
                format!(
                    "*4\r\n$9\r\n127.0.0.1\r\n:{}\r\n$40\r\n{}\r\n*0\r\n",
                    7000 + id,
                    name(id)
                )
            };
            let expected = format!(
                "*1\r\n*5\r\n:0\r\n:16383\r\n{}{}{}",
                node(2),
                node(1),
                node(3)
            );
            assert_eq!(resp2(&slots_reply(&view)), expected, "asked node {me}");
        }
        let view = View::new(&status(1, Some(1)), &membership(Some(1)), None);
        assert!(resp3(&slots_reply(&view)).contains("\r\n%0\r\n"));
    }

    /// Between terms the last leader known stays master; before any leader
    /// was known, no slot has one (an empty SLOTS, `cluster_state:fail`).
    #[test]
    fn no_leader_shows_the_last_one_or_no_master() {
        let view = View::new(&status(1, None), &membership(Some(3)), None);
        assert_eq!(view.master().map(|m| m.name.clone()), Some(name(3)));
        let info = info_text(&view);
        assert!(info.starts_with("cluster_state:fail\r\n"), "{info}");
        assert!(info.contains("cluster_slots_pfail:16384\r\n"), "{info}");

        let view = View::new(&status(1, None), &membership(None), None);
        assert_eq!(slots_reply(&view), Reply::Array(Vec::new()));
        let info = info_text(&view);
        assert!(info.contains("cluster_slots_assigned:0\r\n"), "{info}");
        assert!(info.contains("cluster_size:0\r\n"), "{info}");
        let text = nodes_text(&view, 5);
        assert!(!text.contains("master"), "{text}");
        assert!(!text.contains("0-16383"), "{text}");
    }

    /// CLUSTER SHARDS: one shard with the slot range as a flat pair and
    /// every node's map in Redis 7.0's field order; RESP3 maps, RESP2 flat
    /// arrays.
    #[test]
    fn shards_lists_every_node_with_its_role_and_offset() {
        let view = View::new(&status(1, Some(1)), &membership(Some(1)), None);
        let reply = shards_reply(&view);
        let text = resp2(&reply);
        assert!(
            text.starts_with("*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*3\r\n*14\r\n$2\r\nid\r\n"),
            "{text}"
        );
        let master = format!(
            "$2\r\nid\r\n$40\r\n{}\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:41\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
            name(1)
        );
        assert!(text.contains(&master), "{text}");
        // The leader knows each follower's match index.
        assert!(text.contains("$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:30\r\n"));
        assert!(text.contains("$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:12\r\n"));
        let text = resp3(&reply);
        assert!(text.starts_with("*1\r\n%2\r\n$5\r\nslots\r\n"), "{text}");
        assert!(text.contains("*3\r\n%7\r\n$2\r\nid\r\n"), "{text}");
    }

    /// CLUSTER NODES: Redis's line format, `myself` on the answering node,
    /// replicas naming the master, the slots on the master, epochs = term.
    #[test]
    fn nodes_lines_have_redis_format() {
        let view = View::new(&status(3, Some(2)), &membership(Some(2)), None);
        let text = nodes_text(&view, 1234);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(text.ends_with('\n'));
        assert_eq!(
            lines[0],
            format!(
                "{} 127.0.0.1:7002@8002 master - 0 1234 7 connected 0-16383",
                name(2)
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "{} 127.0.0.1:7001@8001 slave {} 0 1234 7 connected",
                name(1),
                name(2)
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "{} 127.0.0.1:7003@8003 myself,slave {} 0 1234 7 connected",
                name(3),
                name(2)
            )
        );
    }

    /// CLUSTER INFO: Redis 7.0's fields in its order, CRLF lines.
    #[test]
    fn info_has_redis_fields() {
        let view = View::new(&status(1, Some(1)), &membership(Some(1)), None);
        assert_eq!(
            info_text(&view),
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\n\
             cluster_size:1\r\ncluster_current_epoch:7\r\ncluster_my_epoch:7\r\n\
             cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n"
        );
    }

    /// A wildcard `resp_addr` of the answering node is shown as the address
    /// the client reached it at.
    #[test]
    fn a_wildcard_address_shows_the_connection_address() {
        let mut members = membership(Some(1));
        members.members[0].resp_addr = SocketAddr::from(([0, 0, 0, 0], 7001));
        let local = SocketAddr::from(([10, 1, 2, 3], 7001));
        let view = View::new(&status(1, Some(1)), &members, Some(local));
        assert_eq!(view.nodes[0].ip, "10.1.2.3");
        // Another node's wildcard cannot be fixed here: shown as configured.
        let view = View::new(&status(2, Some(1)), &members, Some(local));
        assert_eq!(view.nodes[0].ip, "0.0.0.0");
    }

    use crate::server::command::fake::{run_line, FakeBackend};

    fn error(reply: Reply) -> String {
        match reply {
            Reply::Error(text) => text,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Through the command path (the fake backend is one leader alone):
    /// KEYSLOT, the slot-argument errors in Redis's order and texts,
    /// COUNTKEYSINSLOT / GETKEYSINSLOT over the session's database without
    /// expired keys, and Redis's arity errors.
    #[test]
    fn slot_commands_through_the_command_path() {
        let mut backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        for key in ["foo", "{foo}.a", "{foo}.b", "bar"] {
            let set = format!("SET {key} 1");
            assert_eq!(run_line(&backend, &mut session, &set), Reply::OK);
        }
        let expiring = "SET {foo}.gone 1 PX 10";
        assert_eq!(run_line(&backend, &mut session, expiring), Reply::OK);
        let count = "CLUSTER COUNTKEYSINSLOT 12182";
        assert_eq!(run_line(&backend, &mut session, count), Reply::Integer(4));
        backend.now_ms += 11;
        let mut run = |line: &str| run_line(&backend, &mut session, line);
        assert_eq!(run("CLUSTER KEYSLOT foo"), Reply::Integer(12182));
        assert_eq!(
            run("cluster keyslot {user1000}.following"),
            Reply::Integer(3443)
        );
        assert_eq!(run("CLUSTER COUNTKEYSINSLOT 12182"), Reply::Integer(3));
        assert_eq!(run("CLUSTER COUNTKEYSINSLOT 5061"), Reply::Integer(1));
        assert_eq!(run("CLUSTER COUNTKEYSINSLOT 0"), Reply::Integer(0));
        assert_eq!(
            run("CLUSTER GETKEYSINSLOT 12182 2"),
            Reply::Array(vec![Reply::bulk_str("foo"), Reply::bulk_str("{foo}.a")])
        );
        assert_eq!(
            run("CLUSTER GETKEYSINSLOT 12182 0"),
            Reply::Array(Vec::new())
        );
        assert_eq!(run("SELECT 1"), Reply::OK);
        assert_eq!(run("CLUSTER COUNTKEYSINSLOT 12182"), Reply::Integer(0));
        for (line, text) in [
            ("CLUSTER COUNTKEYSINSLOT -1", "ERR Invalid slot"),
            ("CLUSTER COUNTKEYSINSLOT 16384", "ERR Invalid slot"),
            (
                "CLUSTER COUNTKEYSINSLOT abc",
                "ERR value is not an integer or out of range",
            ),
            (
                "CLUSTER GETKEYSINSLOT 1 -1",
                "ERR Invalid slot or number of keys",
            ),
            (
                "CLUSTER GETKEYSINSLOT 16384 1",
                "ERR Invalid slot or number of keys",
            ),
            (
                "CLUSTER GETKEYSINSLOT x 1",
                "ERR value is not an integer or out of range",
            ),
            (
                "CLUSTER GETKEYSINSLOT 1 x",
                "ERR value is not an integer or out of range",
            ),
            (
                "CLUSTER KEYSLOT",
                "ERR wrong number of arguments for 'cluster|keyslot' command",
            ),
            (
                "CLUSTER KEYSLOT a b",
                "ERR wrong number of arguments for 'cluster|keyslot' command",
            ),
            (
                "CLUSTER",
                "ERR wrong number of arguments for 'cluster' command",
            ),
            (
                "CLUSTER foo",
                "ERR unknown subcommand 'foo'. Try CLUSTER HELP.",
            ),
            (
                "ASKING x",
                "ERR wrong number of arguments for 'asking' command",
            ),
        ] {
            assert_eq!(error(run(line)), text, "{line}");
        }
        assert_eq!(run("ASKING"), Reply::OK);
    }

    /// Topology changes are refused with an error saying why; the read-only
    /// node queries answer about the members they name.
    #[test]
    fn topology_changes_are_refused_and_node_queries_answer() {
        let backend = FakeBackend::new();
        let mut session = Session::new(1, None, None);
        let mut run = |line: &str| run_line(&backend, &mut session, line);
        for line in [
            "CLUSTER ADDSLOTS 1",
            "CLUSTER ADDSLOTSRANGE 1 2",
            "CLUSTER DELSLOTS 1",
            "CLUSTER DELSLOTSRANGE 1 2",
            "CLUSTER FLUSHSLOTS",
            "CLUSTER MEET 127.0.0.1 7000",
            "CLUSTER FORGET abc",
            "CLUSTER REPLICATE abc",
            "CLUSTER RESET",
            "CLUSTER SETSLOT 1 STABLE",
            "CLUSTER SET-CONFIG-EPOCH 1",
            "CLUSTER BUMPEPOCH",
            "CLUSTER SAVECONFIG",
        ] {
            let text = error(run(line));
            let sub = line.split(' ').nth(1).unwrap_or_default();
            assert_eq!(
                text,
                format!("ERR CLUSTER {sub} is not supported by dkv: membership is managed by dkv and the one shard always owns all 16384 slots"),
            );
        }
        assert!(error(run("CLUSTER FAILOVER")).contains("dkv-cli transfer-leader"));
        let me = match run("CLUSTER MYID") {
            Reply::Bulk(id) => String::from_utf8_lossy(&id).into_owned(),
            other => panic!("MYID: {other:?}"),
        };
        assert_eq!(me.len(), 40);
        assert_eq!(
            run(&format!("CLUSTER COUNT-FAILURE-REPORTS {me}")),
            Reply::Integer(0)
        );
        assert_eq!(
            run(&format!("CLUSTER REPLICAS {me}")),
            Reply::Array(Vec::new())
        );
        assert_eq!(error(run("CLUSTER REPLICAS abc")), "ERR Unknown node abc");
        assert_eq!(error(run("CLUSTER SLAVES abc")), "ERR Unknown node abc");
        assert_eq!(
            error(run("CLUSTER COUNT-FAILURE-REPORTS abc")),
            "ERR Unknown node abc"
        );
        assert_eq!(
            run("CLUSTER MYSHARDID"),
            Reply::bulk_str(&shard_name("dkv"))
        );
        let Reply::Verbatim(info) = run("CLUSTER INFO") else {
            panic!("CLUSTER INFO is text");
        };
        assert!(info.starts_with("cluster_state:ok\r\n"), "{info}");
        let Reply::Verbatim(nodes) = run("CLUSTER NODES") else {
            panic!("CLUSTER NODES is text");
        };
        assert!(
            nodes.starts_with(&format!("{me} 127.0.0.1:6379@")),
            "{nodes}"
        );
        assert!(nodes.contains(" myself,master - 0 "), "{nodes}");
        assert!(matches!(run("CLUSTER HELP"), Reply::Array(lines) if lines.len() > 20));
        // What clients check to tell a cluster node: INFO and HELLO.
        let Reply::Verbatim(info) = run("INFO cluster") else {
            panic!("INFO is text");
        };
        assert_eq!(info, "# Cluster\r\ncluster_enabled:1\r\n");
        let Reply::Verbatim(server) = run("INFO server") else {
            panic!("INFO is text");
        };
        assert!(server.contains("\r\nredis_mode:cluster\r\n"), "{server}");
        let Reply::Map(hello) = run("HELLO 3") else {
            panic!("HELLO is a map");
        };
        assert!(hello.contains(&(Reply::bulk_str("mode"), Reply::bulk_str("cluster"))));
    }

    /// REPLICAS lists the replicas' NODES lines for the master and refuses
    /// a replica.
    #[test]
    fn replicas_of_the_master_only() {
        let view = View::new(&status(1, Some(1)), &membership(Some(1)), None);
        assert!(view.find(name(2).as_bytes()).is_some());
        assert!(view.find(b"nosuchnode").is_none());
        let replicas: Vec<_> = view.nodes.iter().filter(|n| !n.master).collect();
        assert_eq!(replicas.len(), 2);
        assert!(node_line(&view, replicas[0], 1).contains(&format!("slave {}", name(1))));
    }
}
