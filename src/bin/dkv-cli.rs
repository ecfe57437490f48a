//! `dkv-cli`: the admin and convenience client for a dkv cluster.
//!
//! - `status` asks every node's HTTP `/status` and prints one table row per node, then
//!   whether there is a leader and whether the commit indexes agree.
//! - `transfer-leader` finds the leader and asks it (`POST /admin/transfer-leader`)
//!   to hand leadership to another node.
//! - `clients` prints every node's CLIENT LIST (`GET /admin/clients`), each line
//!   tagged `node=ID`.
//! - `get`, `set`, `del` speak RESP2 to one node, and print replies as redis-cli does.
//! - `certs ca|node|token` makes a cluster CA, a node's certificate and key, or an
//!   admin token, into files (keys and tokens mode 0600; see `dkv::tls`).
//!
//! `status`, `clients` and `transfer-leader` talk to the nodes' operator
//! port (`metrics_addr`, plain HTTP); `clients` and `transfer-leader` send
//! the admin token.
//!
//! Plain blocking std sockets with timeouts: one request per run, so no runtime is
//! needed, and a dead node costs at most the timeout.

use std::error::Error;
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use serde::Deserialize;

use dkv::opclient::{connect, decode_chunked, host_of, http_request, MAX_RESPONSE_BYTES};

#[derive(Parser, Debug)]
#[command(
    name = "dkv-cli",
    version,
    about = "Admin and convenience client for a dkv cluster",
    long_about = "Admin and convenience client for a dkv cluster.\n\n\
        `status` shows the Raft state of every node (over HTTP); `get`, `set` and `del` \
        send one command to a node over RESP, like redis-cli. Any Redis client works \
        against dkv too, e.g. `redis-cli -p 7001`."
)]
struct Cli {
    #[command(flatten)]
    resp: RespOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show each node's role, term, leader and log indexes (from GET /status on its
    /// HTTP port), then the leader and whether commit indexes agree. Exits 1 if no
    /// node answers.
    Status {
        #[command(flatten)]
        nodes: Endpoints,
        /// Connect and read timeout per node, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Hand leadership to another node (or to one the leader picks) and wait until
    /// it leads. Writes in flight wait for the new leader instead of failing.
    TransferLeader {
        /// Node id of the new leader; omitted: the leader picks a peer.
        #[arg(long)]
        to: Option<u64>,
        /// The leader is found among these.
        #[command(flatten)]
        nodes: Endpoints,
        /// How long to wait for the transfer, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        #[command(flatten)]
        token: AdminToken,
    },
    /// List every node's client connections: each node's CLIENT LIST (from
    /// GET /admin/clients on its operator port, with the admin token), each
    /// line tagged `node=ID`. Exits 1 if no node answers.
    Clients {
        #[command(flatten)]
        nodes: Endpoints,
        /// Connect and read timeout per node, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        #[command(flatten)]
        token: AdminToken,
    },
    /// Take a consistent backup of the running cluster into FILE: a copy of the
    /// keyspace holding every write acknowledged before the backup began (GET
    /// /admin/backup on the first endpoint that answers, with the admin token).
    /// The file is checked end to end before it is renamed into place. Seed a
    /// new cluster from it with `dkv-server --restore FILE` on every node.
    Backup {
        /// Where to write the backup (FILE.partial while it is written).
        file: PathBuf,
        #[command(flatten)]
        nodes: Endpoints,
        /// Connect timeout, and the longest wait for the next bytes, in milliseconds.
        #[arg(long, default_value_t = 30000)]
        timeout_ms: u64,
        #[command(flatten)]
        token: AdminToken,
    },
    /// List, add, promote, remove or move cluster members (membership changes
    /// go through the leader's log one at a time; see the README's runbook).
    #[command(subcommand)]
    Member(MemberCommand),
    /// Make TLS material for a cluster: a CA, node certificates, an admin token.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Print the value of KEY: "value", or (nil) if it does not exist.
    Get {
        /// The key to read.
        key: String,
    },
    /// Set KEY to VALUE (replicated through Raft before OK is printed).
    Set {
        /// The key to write.
        key: String,
        /// The value to store.
        value: String,
    },
    /// Delete one or more keys; prints how many existed: (integer) N.
    Del {
        /// The keys to delete.
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// Show every member (voter or learner) with its addresses, from the
    /// leader's /status when it is among the endpoints (else the first that
    /// answers), and how far each one's log matches the leader's.
    List {
        #[command(flatten)]
        nodes: Endpoints,
        /// Connect and read timeout per node, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Add node ID. It joins as a learner (it gets the log but does not vote);
    /// without --learner it is then promoted to voter once it has caught up,
    /// so start the new node (`dkv-server --join`) before the timeout runs out.
    Add {
        /// The new member's node id.
        id: u64,
        /// Its RESP address (host:port), as clients reach it.
        #[arg(long)]
        resp: String,
        /// Its peer HTTP address (host:port), as the other nodes reach it.
        #[arg(long)]
        http: String,
        /// Stop after adding it as a learner.
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        change: ChangeOpts,
    },
    /// Make learner ID a voter (refused until it has caught up with the leader).
    Promote {
        /// The learner's node id.
        id: u64,
        #[command(flatten)]
        change: ChangeOpts,
    },
    /// Remove member ID (a voter or a learner). Removing the leader makes it
    /// step down once the removal is committed; the others elect a new one.
    Remove {
        /// The member's node id.
        id: u64,
        #[command(flatten)]
        change: ChangeOpts,
    },
    /// Record new addresses for member ID (it moved to another host or port).
    Move {
        /// The member's node id.
        id: u64,
        /// Its new RESP address (host:port).
        #[arg(long)]
        resp: String,
        /// Its new peer HTTP address (host:port).
        #[arg(long)]
        http: String,
        #[command(flatten)]
        change: ChangeOpts,
    },
}

/// What every membership change needs: where the leader is, how long to
/// wait, the admin token.
#[derive(Args, Debug)]
struct ChangeOpts {
    /// The leader is found among these.
    #[command(flatten)]
    nodes: Endpoints,
    /// How long to keep trying (leader changes, a learner catching up), in
    /// milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    #[command(flatten)]
    token: AdminToken,
}

#[derive(Subcommand, Debug)]
enum CertsCommand {
    /// Make a cluster CA: DIR/ca.pem and DIR/ca-key.pem (0600). Keep the key
    /// private: whoever holds it can make member certificates.
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "run/certs")]
        dir: PathBuf,
        /// The cluster id, written into the CA's name.
        #[arg(long, default_value = "dkv")]
        cluster_id: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        valid_days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Make node ID's certificate and key, signed by DIR's CA: DIR/nodeID.pem and
    /// DIR/nodeID-key.pem (0600). The certificate names the member id
    /// (DNS name node-ID.dkv), which is what peers check.
    Node {
        /// Directory holding the CA and receiving the files.
        #[arg(long, default_value = "run/certs")]
        dir: PathBuf,
        /// The member id the certificate names.
        #[arg(long)]
        id: u64,
        /// Extra DNS names or IP addresses (comma-separated), for clients that
        /// check the host they connect to (e.g. RESP over TLS).
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 825)]
        valid_days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Make a random admin token (256 bits, hex) in FILE (0600).
    Token {
        /// The file to write.
        #[arg(long, default_value = "run/certs/admin-token")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// The nodes an admin command asks.
#[derive(Args, Debug)]
struct Endpoints {
    /// Comma-separated operator addresses (the nodes' `metrics_addr`,
    /// host:port) of the nodes to ask.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103"
    )]
    endpoints: Vec<String>,
}

/// Where the admin token is.
#[derive(Args, Debug)]
struct AdminToken {
    /// File holding the admin token (the nodes' `admin_token_path`); default:
    /// $DKV_ADMIN_TOKEN_FILE, else run/certs/admin-token.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RespOpts {
    /// get/set/del: RESP address (host:port) of the node to send the command to.
    /// Any node works: followers forward writes to the leader.
    #[arg(long, global = true, default_value = "127.0.0.1:7001")]
    addr: String,
    /// get/set/del: connect and reply timeout, in milliseconds.
    #[arg(long = "resp-timeout-ms", global = true, default_value_t = 10_000)]
    timeout_ms: u64,
    /// get/set/del: print bulk replies as raw bytes, without quotes or escapes
    /// (nil prints an empty line).
    #[arg(long, global = true)]
    raw: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Status { nodes, timeout_ms } => {
            status(&nodes.endpoints, Duration::from_millis(timeout_ms.max(1)))
        }
        Command::TransferLeader {
            to,
            nodes,
            timeout_ms,
            token,
        } => transfer_leader(
            to,
            &nodes.endpoints,
            Duration::from_millis(timeout_ms.max(1)),
            token.admin_token_file,
        ),
        Command::Clients {
            nodes,
            timeout_ms,
            token,
        } => clients(
            &nodes.endpoints,
            Duration::from_millis(timeout_ms.max(1)),
            token.admin_token_file,
        ),
        Command::Backup {
            file,
            nodes,
            timeout_ms,
            token,
        } => backup(
            &file,
            &nodes.endpoints,
            Duration::from_millis(timeout_ms.max(1)),
            token.admin_token_file,
        ),
        Command::Member(command) => member(command),
        Command::Certs(command) => certs(command),
        Command::Get { key } => resp_command(&cli.resp, &["GET", &key]),
        Command::Set { key, value } => resp_command(&cli.resp, &["SET", &key, &value]),
        Command::Del { keys } => {
            let mut args = vec!["DEL"];
            args.extend(keys.iter().map(String::as_str));
            resp_command(&cli.resp, &args)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dkv-cli: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A failure with a message meant for the user.
#[derive(Debug)]
struct CliError(String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for CliError {}

fn fail<T>(message: impl Into<String>) -> Result<T, Box<dyn Error>> {
    Err(Box::new(CliError(message.into())))
}

// ---------------------------------------------------------------------------------
// status

/// The JSON a node serves at GET /status.
#[derive(Debug, Deserialize)]
struct NodeStatus {
    id: u64,
    role: String,
    term: u64,
    leader: Option<u64>,
    leader_resp_addr: Option<String>,
    commit_index: u64,
    last_applied: u64,
    last_log_index: u64,
    #[serde(default)]
    loading: bool,
    #[serde(default)]
    #[allow(dead_code)]
    leader_changes: u64,
    /// Every member as this node knows it (the membership in effect).
    #[serde(default)]
    members: Vec<MemberInfo>,
    /// Leader only: how far each other voter's log matches.
    #[serde(default)]
    followers: Vec<FollowerInfo>,
    /// Leader only: how far each learner's log matches.
    #[serde(default)]
    learners: Vec<FollowerInfo>,
}

/// A member as /status shows it.
#[derive(Debug, Deserialize)]
struct MemberInfo {
    id: u64,
    voter: bool,
    resp_addr: String,
    http_addr: String,
}

/// A follower or learner as the leader's /status shows it.
#[derive(Debug, Deserialize)]
struct FollowerInfo {
    id: u64,
    match_index: u64,
}

fn status(endpoints: &[String], timeout: Duration) -> Result<ExitCode, Box<dyn Error>> {
    let endpoints: Vec<&str> = endpoints
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect();
    if endpoints.is_empty() {
        return fail("no endpoints given (--endpoints host:port,host:port,...)");
    }
    let results: Vec<(&str, Result<NodeStatus, String>)> = endpoints
        .iter()
        .map(|&e| (e, fetch_status(e, timeout).map_err(|err| err.to_string())))
        .collect();

    let header = [
        "ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAST_LOG",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (endpoint, result) in &results {
        let mut row = vec![endpoint.to_string()];
        match result {
            Ok(s) => {
                let role = if s.loading {
                    format!("{} (loading)", s.role)
                } else {
                    s.role.clone()
                };
                row.extend([
                    s.id.to_string(),
                    role,
                    s.term.to_string(),
                    s.leader.map_or_else(|| "-".to_string(), |l| l.to_string()),
                    s.commit_index.to_string(),
                    s.last_applied.to_string(),
                    s.last_log_index.to_string(),
                ]);
            }
            Err(err) => row.push(format!("unreachable ({err})")),
        }
        rows.push(row);
    }
    print!("{}", render_table(&header, &rows));

    let reachable: Vec<&NodeStatus> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    if reachable.is_empty() {
        println!("no node reachable ({} endpoints tried)", endpoints.len());
        return Ok(ExitCode::FAILURE);
    }
    println!();
    for line in summary(&reachable, endpoints.len()) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines under the table: reachability, leader, commit index agreement.
fn summary(nodes: &[&NodeStatus], endpoint_count: usize) -> Vec<String> {
    let mut lines = vec![format!("reachable: {}/{endpoint_count}", nodes.len())];
    let leaders: Vec<&&NodeStatus> = nodes.iter().filter(|s| s.role == "Leader").collect();
    match leaders.as_slice() {
        [] => {
            let mut reported: Vec<u64> = nodes.iter().filter_map(|s| s.leader).collect();
            reported.sort_unstable();
            reported.dedup();
            if reported.is_empty() {
                lines.push("leader: no leader".to_string());
            } else {
                let ids: Vec<String> = reported.iter().map(u64::to_string).collect();
                lines.push(format!(
                    "leader: no leader among the reachable nodes (followers report node {})",
                    ids.join(", ")
                ));
            }
        }
        [leader] => {
            let resp = leader
                .leader_resp_addr
                .as_deref()
                .map(|a| format!(", RESP {a}"))
                .unwrap_or_default();
            lines.push(format!(
                "leader: node {} (term {}{resp})",
                leader.id, leader.term
            ));
        }
        many => {
            // Two leaders can only be in different terms; the older one has not heard yet.
            let all: Vec<String> = many
                .iter()
                .map(|s| format!("node {} (term {})", s.id, s.term))
                .collect();
            lines.push(format!(
                "leader: several nodes think they lead: {}",
                all.join(", ")
            ));
        }
    }
    let first = nodes[0].commit_index;
    if nodes.iter().all(|s| s.commit_index == first) {
        lines.push(format!(
            "commit index: equal on all {} reachable nodes ({first})",
            nodes.len()
        ));
    } else {
        let each: Vec<String> = nodes
            .iter()
            .map(|s| format!("node {}: {}", s.id, s.commit_index))
            .collect();
        lines.push(format!("commit index: differs ({})", each.join(", ")));
    }
    lines
}

fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        // A one-cell-after-endpoint row (unreachable) does not widen the columns.
        if row.len() == header.len() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        } else if let Some(first) = row.first() {
            widths[0] = widths[0].max(first.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect();
        out.push_str(&cells.join("  "));
        out.push('\n');
    }
    out
}

/// GET http://`endpoint`/status and parse its JSON.
fn fetch_status(endpoint: &str, timeout: Duration) -> Result<NodeStatus, Box<dyn Error>> {
    let host = host_of(endpoint);
    let body = http_get(host, "/status", timeout)?;
    match serde_json::from_slice::<NodeStatus>(&body) {
        Ok(status) => Ok(status),
        Err(err) => fail(format!("bad /status JSON: {err}")),
    }
}

/// The admin token from `--admin-token-file`, $DKV_ADMIN_TOKEN_FILE or
/// run/certs/admin-token.
fn admin_token(admin_token_file: Option<PathBuf>) -> Result<String, Box<dyn Error>> {
    let token_file = admin_token_file
        .or_else(|| std::env::var_os("DKV_ADMIN_TOKEN_FILE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("run/certs/admin-token"));
    let token = std::fs::read_to_string(&token_file)
        .map_err(|err| CliError(format!("admin token {}: {err}", token_file.display())))?;
    let token = token.trim().to_string();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return fail(format!(
            "admin token {}: empty or not printable ASCII",
            token_file.display()
        ));
    }
    Ok(token)
}

/// `clients`: every node's CLIENT LIST, each line tagged with its node.
fn clients(
    endpoints: &[String],
    timeout: Duration,
    admin_token_file: Option<PathBuf>,
) -> Result<ExitCode, Box<dyn Error>> {
    let token = admin_token(admin_token_file)?;
    let mut answered = 0;
    for endpoint in endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let host = host_of(endpoint);
        let listed = fetch_status(host, timeout).and_then(|status| {
            let (code, body) = http_request(
                "GET",
                host,
                "/admin/clients",
                &format!("Authorization: Bearer {token}\r\n"),
                timeout,
            )?;
            if code != 200 {
                return fail(format!(
                    "HTTP {code}: {}",
                    String::from_utf8_lossy(&body).trim_end()
                ));
            }
            Ok((status.id, body))
        });
        match listed {
            Ok((id, body)) => {
                answered += 1;
                for line in String::from_utf8_lossy(&body).lines() {
                    println!("{line} node={id}");
                }
            }
            Err(err) => eprintln!("dkv-cli: {endpoint}: {err}"),
        }
    }
    if answered == 0 {
        return fail("no node answered");
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds the leader among `endpoints` and asks it to hand leadership over.
fn transfer_leader(
    to: Option<u64>,
    endpoints: &[String],
    timeout: Duration,
    admin_token_file: Option<PathBuf>,
) -> Result<ExitCode, Box<dyn Error>> {
    let token = admin_token(admin_token_file)?;
    let probe = Duration::from_millis(2000);
    let statuses: Vec<(String, NodeStatus)> = endpoints
        .iter()
        .filter_map(|e| fetch_status(e, probe).ok().map(|s| (e.clone(), s)))
        .collect();
    let Some(leader_id) = statuses.iter().find_map(|(_, s)| s.leader) else {
        return fail("no node reports a leader; nothing to transfer");
    };
    let Some((endpoint, _)) = statuses.iter().find(|(_, s)| s.id == leader_id) else {
        return fail(format!(
            "the leader (node {leader_id}) is not among the endpoints"
        ));
    };
    if to == Some(leader_id) {
        println!("node {leader_id} is already the leader");
        return Ok(ExitCode::SUCCESS);
    }
    let host = host_of(endpoint);
    let path = match to {
        Some(id) => format!("/admin/transfer-leader?to={id}"),
        None => "/admin/transfer-leader".to_string(),
    };
    // The server waits for the new leader itself; give it room beyond that.
    let (code, body) = http_request(
        "POST",
        host,
        &path,
        &format!("Authorization: Bearer {token}\r\n"),
        timeout + Duration::from_secs(5),
    )?;
    if code == 401 || code == 403 {
        return fail(format!(
            "node {leader_id} refused the admin request (HTTP {code}): {}",
            String::from_utf8_lossy(&body).trim_end()
        ));
    }
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|err| CliError(format!("bad reply from {host}: {err}")))?;
    if code == 200 && answer["ok"] == serde_json::Value::Bool(true) {
        println!(
            "leadership moved from node {leader_id} to node {} (term {})",
            answer["leader"], answer["term"]
        );
        Ok(ExitCode::SUCCESS)
    } else {
        fail(format!(
            "transfer refused by node {leader_id}: {}",
            answer["error"].as_str().unwrap_or("unknown error")
        ))
    }
}

// ---------------------------------------------------------------------------------
// member

fn member(command: MemberCommand) -> Result<ExitCode, Box<dyn Error>> {
    match command {
        MemberCommand::List { nodes, timeout_ms } => {
            member_list(&nodes.endpoints, Duration::from_millis(timeout_ms.max(1)))
        }
        MemberCommand::Add {
            id,
            resp,
            http,
            learner,
            change,
        } => {
            let query = format!("op=add&id={id}&resp={resp}&http={http}");
            let index = member_change(&change, &query, &format!("add node {id}"))?;
            println!("node {id} added as a learner (log index {index})");
            if !learner {
                let query = format!("op=promote&id={id}");
                let index = member_change(&change, &query, &format!("promote node {id}"))?;
                println!("node {id} promoted to voter (log index {index})");
            }
            Ok(ExitCode::SUCCESS)
        }
        MemberCommand::Promote { id, change } => {
            let query = format!("op=promote&id={id}");
            let index = member_change(&change, &query, &format!("promote node {id}"))?;
            println!("node {id} promoted to voter (log index {index})");
            Ok(ExitCode::SUCCESS)
        }
        MemberCommand::Remove { id, change } => {
            let query = format!("op=remove&id={id}");
            let index = member_change(&change, &query, &format!("remove node {id}"))?;
            println!("node {id} removed (log index {index})");
            Ok(ExitCode::SUCCESS)
        }
        MemberCommand::Move {
            id,
            resp,
            http,
            change,
        } => {
            let query = format!("op=move&id={id}&resp={resp}&http={http}");
            let index = member_change(&change, &query, &format!("move node {id}"))?;
            println!("node {id} now at resp {resp}, http {http} (log index {index})");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `member list`: the membership as the leader (or the first node that
/// answers) sees it.
fn member_list(endpoints: &[String], timeout: Duration) -> Result<ExitCode, Box<dyn Error>> {
    let statuses: Vec<NodeStatus> = endpoints
        .iter()
        .filter_map(|e| match fetch_status(e, timeout) {
            Ok(status) => Some(status),
            Err(err) => {
                eprintln!("dkv-cli: {e}: {err}");
                None
            }
        })
        .collect();
    let Some(view) = statuses
        .iter()
        .find(|s| s.leader == Some(s.id))
        .or_else(|| statuses.first())
    else {
        return fail("no node answered");
    };
    let rows: Vec<Vec<String>> = view
        .members
        .iter()
        .map(|m| {
            let state = if view.leader == Some(m.id) {
                "leader".to_string()
            } else {
                statuses
                    .iter()
                    .find(|s| s.id == m.id)
                    .map_or("-".to_string(), |s| s.role.to_lowercase())
            };
            let matched = if view.leader == Some(view.id) && m.id == view.id {
                view.last_log_index.to_string()
            } else {
                view.followers
                    .iter()
                    .chain(&view.learners)
                    .find(|f| f.id == m.id)
                    .map_or("-".to_string(), |f| f.match_index.to_string())
            };
            vec![
                m.id.to_string(),
                if m.voter { "voter" } else { "learner" }.to_string(),
                m.resp_addr.clone(),
                m.http_addr.clone(),
                state,
                matched,
            ]
        })
        .collect();
    print!(
        "{}",
        render_table(&["ID", "MEMBER", "RESP", "HTTP", "STATE", "MATCH"], &rows)
    );
    println!(
        "as seen by node {}{}",
        view.id,
        if view.leader == Some(view.id) {
            " (the leader)"
        } else {
            " (not the leader: match indexes are the leader's to know)"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Sends one membership change (`query`, e.g. `op=promote&id=4`) to the
/// leader found among the endpoints, retrying while the leader moves or a
/// learner catches up, until `change.timeout_ms`. Returns the log index of
/// the committed change.
fn member_change(change: &ChangeOpts, query: &str, what: &str) -> Result<u64, Box<dyn Error>> {
    let token = admin_token(change.token.admin_token_file.clone())?;
    let deadline = std::time::Instant::now() + Duration::from_millis(change.timeout_ms.max(1));
    let probe = Duration::from_millis(2000);
    let mut last_error = String::from("no node reports a leader");
    loop {
        let statuses: Vec<(String, NodeStatus)> = change
            .nodes
            .endpoints
            .iter()
            .filter_map(|e| fetch_status(e, probe).ok().map(|s| (e.clone(), s)))
            .collect();
        let leader = statuses.iter().find(|(_, s)| s.leader == Some(s.id));
        if let Some((endpoint, status)) = leader {
            let (code, body) = http_request(
                "POST",
                host_of(endpoint),
                &format!("/admin/members?{query}"),
                &format!("Authorization: Bearer {token}\r\n"),
                probe + Duration::from_secs(10),
            )?;
            if code == 401 || code == 403 {
                return fail(format!(
                    "node {} refused the admin request (HTTP {code}): {}",
                    status.id,
                    String::from_utf8_lossy(&body).trim_end()
                ));
            }
            let answer: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|err| CliError(format!("bad reply from {endpoint}: {err}")))?;
            if code == 200 && answer["ok"] == serde_json::Value::Bool(true) {
                return Ok(answer["index"].as_u64().unwrap_or_default());
            }
            last_error = answer["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string();
            // 400: the change itself is wrong; retrying will not help.
            if code == 400 {
                return fail(format!("{what}: {last_error}"));
            }
        } else if statuses.is_empty() {
            last_error = "no node answered".to_string();
        }
        if std::time::Instant::now() >= deadline {
            return fail(format!("{what}: {last_error}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `certs ca|node|token`: writes TLS material with `dkv::tls`.
fn certs(command: CertsCommand) -> Result<ExitCode, Box<dyn Error>> {
    use dkv::raft::NodeId;
    use dkv::tls;
    match command {
        CertsCommand::Ca {
            dir,
            cluster_id,
            valid_days,
            force,
        } => {
            let ca = tls::generate_ca(&cluster_id, valid_days)?;
            tls::write_ca(&dir, &ca, force)?;
            println!(
                "wrote {} and {} (cluster {cluster_id}, {valid_days} days)",
                dir.join(tls::CA_CERT_FILE).display(),
                dir.join(tls::CA_KEY_FILE).display()
            );
        }
        CertsCommand::Node {
            dir,
            id,
            names,
            valid_days,
            force,
        } => {
            if id == 0 {
                return fail("--id: node id must be non-zero");
            }
            let ca = tls::read_ca(&dir)?;
            let node = tls::generate_node_cert(&ca, NodeId(id), &names, valid_days)?;
            let (cert, key) = tls::write_node(&dir, NodeId(id), &node, force)?;
            println!(
                "wrote {} and {} (names {}, {valid_days} days)",
                cert.display(),
                key.display(),
                std::iter::once(tls::peer_name_string(NodeId(id)))
                    .chain(names)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        CertsCommand::Token { out, force } => {
            use rand::RngExt;
            let mut rng = rand::rng();
            let token: String = (0..32)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect();
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            tls::write_file(&out, &format!("{token}\n"), 0o600, force)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A minimal HTTP/1.1 GET; anything but 200 is an error.
fn http_get(host: &str, path: &str, timeout: Duration) -> Result<Vec<u8>, Box<dyn Error>> {
    let (code, body) = http_request("GET", host, path, "", timeout)?;
    if code != 200 {
        return fail(format!("GET {path}: HTTP {code}"));
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------
// backup

/// `backup`: asks each endpoint in turn until one streams a backup, then
/// checks the file and renames it into place.
fn backup(
    file: &Path,
    endpoints: &[String],
    timeout: Duration,
    admin_token_file: Option<PathBuf>,
) -> Result<ExitCode, Box<dyn Error>> {
    let token = admin_token(admin_token_file)?;
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut last_error = None;
    for endpoint in endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let host = host_of(endpoint);
        match download_backup(host, &token, &partial, timeout) {
            Ok(bytes) => {
                let checked = std::fs::File::open(&partial)
                    .map_err(|e| e.to_string())
                    .and_then(|f| {
                        let (reader, header) =
                            dkv::store::backup::BackupReader::open(std::io::BufReader::new(f))
                                .map_err(|e| e.to_string())?;
                        let payload = reader.verify().map_err(|e| e.to_string())?;
                        Ok((header, payload))
                    });
                let (header, payload) = match checked {
                    Ok(checked) => checked,
                    Err(err) => {
                        last_error = Some(format!("{endpoint}: the backup does not check: {err}"));
                        continue;
                    }
                };
                std::fs::rename(&partial, file)?;
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                println!(
                    "backup of cluster {} from node {} through index {} (term {}): {} payload bytes, {bytes} bytes in {}",
                    header.cluster_id,
                    header.taken_by,
                    header.index,
                    header.term,
                    payload,
                    file.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(err) => {
                eprintln!("dkv-cli: {endpoint}: {err}");
                last_error = Some(format!("{endpoint}: {err}"));
            }
        }
    }
    let _ = std::fs::remove_file(&partial);
    fail(last_error.unwrap_or_else(|| "no endpoints given".to_string()))
}

/// Streams `GET /admin/backup` from `host` into `path` (fsynced); returns
/// the bytes written.
fn download_backup(
    host: &str,
    token: &str,
    path: &Path,
    timeout: Duration,
) -> Result<u64, Box<dyn Error>> {
    let mut stream = connect(host, timeout)?;
    let request = format!(
        "GET /admin/backup HTTP/1.1\r\nHost: {host}\r\nUser-Agent: dkv-cli\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut input = std::io::BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = (&mut input).take(8192).read_until(b'\n', &mut line)?;
        if n == 0 {
            return fail("connection closed before the response head ended");
        }
        if line == b"\r\n" {
            break;
        }
        head.extend_from_slice(&line);
        if head.len() > 64 * 1024 {
            return fail("response head too large");
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(0);
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    if code != 200 {
        let mut text = Vec::new();
        input.take(64 * 1024).read_to_end(&mut text)?;
        let text = if chunked {
            decode_chunked(&text).unwrap_or(text)
        } else {
            text
        };
        return fail(format!(
            "HTTP {code}: {}",
            String::from_utf8_lossy(&text).trim_end()
        ));
    }
    let mut out = std::fs::File::create(path)?;
    let mut written = 0u64;
    if chunked {
        loop {
            let mut size_line = Vec::new();
            (&mut input).take(1024).read_until(b'\n', &mut size_line)?;
            let text = String::from_utf8_lossy(&size_line);
            let text = text.split(';').next().unwrap_or_default().trim();
            let Ok(size) = u64::from_str_radix(text, 16) else {
                return fail(format!("bad chunk size {text:?} (the stream was cut)"));
            };
            if size == 0 {
                break;
            }
            let copied = std::io::copy(&mut (&mut input).take(size), &mut out)?;
            if copied != size {
                return fail("the stream ended inside a chunk");
            }
            written += copied;
            let mut crlf = [0u8; 2];
            input.read_exact(&mut crlf)?;
        }
    } else {
        written = std::io::copy(&mut input, &mut out)?;
    }
    out.sync_all()?;
    Ok(written)
}

// ---------------------------------------------------------------------------------
// get / set / del

/// Sends one command and prints the reply; exit code 1 on an error reply.
fn resp_command(opts: &RespOpts, args: &[&str]) -> Result<ExitCode, Box<dyn Error>> {
    let timeout = Duration::from_millis(opts.timeout_ms.max(1));
    let mut stream = connect(&opts.addr, timeout).map_err(|err| {
        CliError(format!(
            "{}: {err} (is dkv-server running there? `make cluster` starts a local cluster)",
            opts.addr
        ))
    })?;
    stream.write_all(&encode_command(args))?;
    let reply = read_reply(&mut stream)
        .map_err(|err| CliError(format!("{} to {}: {err}", args[0], opts.addr)))?;
    let mut out = Vec::new();
    format_reply(&reply, opts.raw, &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(if matches!(reply, OwnedFrame::Error(_)) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A RESP2 array of bulk strings, as every Redis client sends commands.
fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut buf = Vec::new();
    dkv::server::codec::append_command(&mut buf, args);
    buf
}

fn read_reply(stream: &mut TcpStream) -> Result<OwnedFrame, Box<dyn Error>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if !buf.is_empty() {
            match decode(&buf) {
                Ok(Some((frame, _))) => return Ok(frame),
                Ok(None) => {}
                Err(err) => return fail(format!("bad reply: {err:?}")),
            }
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return fail("timed out waiting for the reply");
            }
            Err(err) => return fail(format!("reading the reply: {err}")),
        };
        if n == 0 {
            return fail("connection closed before a complete reply");
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE_BYTES {
            return fail("reply too large");
        }
    }
}

/// redis-cli's output: `OK`, `"value"`, `(nil)`, `(integer) 1`, `(error) ERR ...`,
/// arrays as numbered lines. With `raw`, bulk strings are printed as they are.
fn format_reply(frame: &OwnedFrame, raw: bool, out: &mut Vec<u8>) {
    format_nested(frame, raw, 0, out);
}

fn format_nested(frame: &OwnedFrame, raw: bool, indent: usize, out: &mut Vec<u8>) {
    match frame {
        OwnedFrame::SimpleString(s) => {
            out.extend_from_slice(s);
            out.push(b'\n');
        }
        OwnedFrame::Error(e) => {
            if !raw {
                out.extend_from_slice(b"(error) ");
            }
            out.extend_from_slice(e.as_bytes());
            out.push(b'\n');
        }
        OwnedFrame::Integer(i) => {
            let text = if raw {
                format!("{i}\n")
            } else {
                format!("(integer) {i}\n")
            };
            out.extend_from_slice(text.as_bytes());
        }
        OwnedFrame::BulkString(b) => {
            if raw {
                out.extend_from_slice(b);
            } else {
                out.extend_from_slice(quote(b).as_bytes());
            }
            out.push(b'\n');
        }
        OwnedFrame::Null => {
            if !raw {
                out.extend_from_slice(b"(nil)");
            }
            out.push(b'\n');
        }
        OwnedFrame::Array(items) if items.is_empty() => {
            out.extend_from_slice(if raw { b"\n" } else { b"(empty array)\n" });
        }
        OwnedFrame::Array(items) => {
            let width = items.len().to_string().len();
            for (i, item) in items.iter().enumerate() {
                if raw {
                    format_nested(item, raw, indent, out);
                    continue;
                }
                let pad = if i == 0 { 0 } else { indent };
                let prefix = format!("{:pad$}{:>width$}) ", "", i + 1);
                out.extend_from_slice(prefix.as_bytes());
                format_nested(item, raw, indent + width + 2, out);
            }
        }
    }
}

/// Quotes and escapes bytes as redis-cli does (`sdscatrepr`).
fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(frame: OwnedFrame, raw: bool) -> String {
        let mut out = Vec::new();
        format_reply(&frame, raw, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn replies_print_like_redis_cli() {
        assert_eq!(
            shown(OwnedFrame::SimpleString(b"OK".to_vec()), false),
            "OK\n"
        );
        assert_eq!(
            shown(OwnedFrame::BulkString(b"1".to_vec()), false),
            "\"1\"\n"
        );
        assert_eq!(shown(OwnedFrame::BulkString(b"1".to_vec()), true), "1\n");
        assert_eq!(shown(OwnedFrame::Null, false), "(nil)\n");
        assert_eq!(shown(OwnedFrame::Integer(1), false), "(integer) 1\n");
        assert_eq!(
            shown(OwnedFrame::Error("ERR wrong".to_string()), false),
            "(error) ERR wrong\n"
        );
        assert_eq!(
            shown(OwnedFrame::BulkString(b"a\"b\n\x01".to_vec()), false),
            "\"a\\\"b\\n\\x01\"\n"
        );
        assert_eq!(
            shown(
                OwnedFrame::Array(vec![
                    OwnedFrame::BulkString(b"a".to_vec()),
                    OwnedFrame::Null
                ]),
                false
            ),
            "1) \"a\"\n2) (nil)\n"
        );
    }

    #[test]
    fn commands_encode_as_bulk_string_arrays() {
        assert_eq!(
            encode_command(&["SET", "k", "héllo"]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nh\xc3\xa9llo\r\n".to_vec()
        );
    }

    #[test]
    fn chunked_bodies_decode() {
        let body = decode_chunked(b"4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n").expect("valid");
        assert_eq!(body, b"{\"a\":1}");
        assert!(decode_chunked(b"4\r\n{\"").is_err());
    }

    #[test]
    fn status_json_parses_and_summarizes() {
        let leader: NodeStatus = serde_json::from_str(
            r#"{"id":2,"role":"Leader","term":3,"leader":2,"leader_resp_addr":"127.0.0.1:7002",
                "commit_index":10,"last_applied":10,"last_log_index":10,"loading":false,"leader_changes":1}"#,
        )
        .expect("valid");
        let follower: NodeStatus = serde_json::from_str(
            r#"{"id":1,"role":"Follower","term":3,"leader":null,"leader_resp_addr":null,
                "commit_index":9,"last_applied":9,"last_log_index":10,"loading":false,"leader_changes":1}"#,
        )
        .expect("valid");
        let lines = summary(&[&leader, &follower], 3);
        assert_eq!(lines[0], "reachable: 2/3");
        assert_eq!(lines[1], "leader: node 2 (term 3, RESP 127.0.0.1:7002)");
        assert_eq!(lines[2], "commit index: differs (node 2: 10, node 1: 9)");
        let lines = summary(&[&follower], 1);
        assert_eq!(lines[1], "leader: no leader");
        assert!(lines[2].starts_with("commit index: equal"));
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec![
                "127.0.0.1:8001".to_string(),
                "1".to_string(),
                "Leader".to_string(),
            ],
            vec!["h:1".to_string(), "unreachable (refused)".to_string()],
        ];
        let table = render_table(&["ENDPOINT", "ID", "ROLE"], &rows);
        assert_eq!(
            table,
            "ENDPOINT        ID  ROLE\n127.0.0.1:8001  1   Leader\nh:1             unreachable (refused)\n"
        );
    }
}
