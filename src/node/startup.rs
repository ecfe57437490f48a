//! What `dkv-server` checks and does before a node starts on a data
//! directory that holds nothing yet: refuse to start as a member that lost
//! its data, or join a running cluster (`--join`).
//!
//! # Why an emptied member must not start as itself
//!
//! A voter's vote and log are promises (Raft's Figure 2 state is
//! persistent). A member whose data directory was emptied has forgotten
//! whom it voted for and which entries it acknowledged; starting it under
//! its old id could elect two leaders in one term or lose a committed
//! entry. So on a fresh directory, without `--join` or `--restore`, the
//! node asks its configured peers for their `/status`: if one of them runs a
//! cluster that has committed more than its bootstrap entry and lists this
//! node as a member, the start is refused with the way out (remove the dead
//! member, add it back as a new one with `--join`). Peers that do not
//! answer (a cluster's very first start, all nodes down) do not stop it.
//! With `peer_tls` the node asks over mutual TLS with its own certificate.
//!
//! # Joining
//!
//! `--join HOST:PORT` names any member's operator address. On a fresh
//! directory the node reads the membership there; if it is not a member
//! yet it asks the leader to add it as a learner (with the admin token of
//! its own config), then starts with no bootstrap voters of its own: it
//! learns the membership, the log and a snapshot from the leader. A node
//! whose directory holds data ignores `--join` (its log knows the
//! membership). Promotion to voter is a separate, explicit step
//! (`dkv-cli member promote`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::Config;
use crate::opclient::{host_of, http_request};
use crate::raft::NodeId;

/// How long each peer is given to answer the emptied-member check.
const PEER_PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long `--join` keeps asking (leader changes, a change in flight).
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Above this commit index a cluster is past its bootstrap entry.
const BOOTSTRAP_COMMIT: u64 = 1;

/// The part of a node's `/status` these checks read.
#[derive(Debug, Deserialize)]
struct PeerStatus {
    id: u64,
    leader: Option<u64>,
    commit_index: u64,
    #[serde(default)]
    members: Vec<PeerMember>,
}

#[derive(Debug, Deserialize)]
struct PeerMember {
    id: u64,
    voter: bool,
    http_addr: String,
}

/// A data directory holds nothing yet: it does not exist or is empty.
pub fn is_fresh(data_dir: &Path) -> bool {
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn fetch_status(host: &str, timeout: Duration) -> Result<PeerStatus, String> {
    let (code, body) =
        http_request("GET", host_of(host), "/status", "", timeout).map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("GET /status: HTTP {code}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad /status JSON: {e}"))
}

/// `/status` of peer `id` at `host` over mutual TLS.
fn fetch_status_tls(
    host: &str,
    id: NodeId,
    client: std::sync::Arc<rustls::ClientConfig>,
) -> Result<PeerStatus, String> {
    let tcp = crate::opclient::connect(host, PEER_PROBE_TIMEOUT).map_err(|e| e.to_string())?;
    let session = rustls::ClientConnection::new(client, crate::tls::peer_name(id))
        .map_err(|e| e.to_string())?;
    let stream = rustls::StreamOwned::new(session, tcp);
    let (code, body) = crate::opclient::http_exchange(stream, "GET", host, "/status", "")
        .map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("GET /status: HTTP {code}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad /status JSON: {e}"))
}

/// On a fresh data directory: refuses (with the way out) when a configured
/// peer runs a cluster past its bootstrap that lists this node as a member.
///
/// # Errors
/// The message for the operator.
pub fn refuse_emptied_member(config: &Config) -> Result<(), String> {
    if config.peers.is_empty() {
        return Ok(());
    }
    // With peer TLS the peers' HTTP ports take this node's certificate.
    let tls = match &config.peer_tls {
        Some(files) => Some(
            crate::tls::PeerTls::load(&files.ca_cert_path, &files.cert_path, &files.key_path)
                .map_err(|e| format!("peer_tls: {e}"))?
                .client,
        ),
        None => None,
    };
    for peer in &config.peers {
        let host = peer.http_addr.to_string();
        let fetched = match &tls {
            None => fetch_status(&host, PEER_PROBE_TIMEOUT),
            Some(client) => fetch_status_tls(&host, NodeId(peer.id), client.clone()),
        };
        let Ok(status) = fetched else {
            continue;
        };
        let listed = status.members.iter().find(|m| m.id == config.id);
        if let Some(member) = listed {
            if status.commit_index > BOOTSTRAP_COMMIT {
                return Err(format!(
                    "data directory {} is empty, but node {} is a {} of the running cluster \
                     (node {} reports commit index {}). A member that lost its data must not \
                     rejoin under its old identity: its votes and acknowledgements are gone. \
                     Replace it: `dkv-cli member remove {}`, then `dkv-cli member add {} --resp \
                     {} --http {} --learner`, then start this node with `--join {}`, then \
                     `dkv-cli member promote {}`. If this node has never run in this cluster, \
                     start it with `--join {}`.",
                    config.data_dir.display(),
                    config.id,
                    if member.voter { "voter" } else { "learner" },
                    status.id,
                    status.commit_index,
                    config.id,
                    config.id,
                    config.resp_addr,
                    config.http_addr,
                    peer.http_addr,
                    config.id,
                    peer.http_addr,
                ));
            }
        }
    }
    Ok(())
}

/// `--join SEED` on a fresh directory: makes sure this node is a member,
/// asking the leader to add it as a learner if it is not one yet. Returns
/// the other members' peer HTTP addresses as the seed knows them: the node
/// answers them until its own log names the members.
///
/// # Errors
/// The message for the operator (the seed unreachable, no admin token to
/// ask with, the leader refusing).
pub fn join(
    config: &Config,
    seed: &str,
    admin_token: Option<&str>,
) -> Result<Vec<(NodeId, SocketAddr)>, String> {
    let me = config.id;
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let mut last_error;
    loop {
        match fetch_status(seed, PEER_PROBE_TIMEOUT * 2) {
            Ok(status) => {
                let peers: Vec<(NodeId, SocketAddr)> = status
                    .members
                    .iter()
                    .filter(|m| m.id != me)
                    .filter_map(|m| Some((NodeId(m.id), m.http_addr.parse().ok()?)))
                    .collect();
                if let Some(member) = status.members.iter().find(|m| m.id == me) {
                    tracing::info!(
                        id = me,
                        voter = member.voter,
                        seed,
                        "already a member; starting to catch up"
                    );
                    return Ok(peers);
                }
                // The seed itself when it leads (its operator port is plain
                // HTTP), else the leader's HTTP port (plain only without
                // peer TLS).
                let leader = if status.leader == Some(status.id) {
                    Some(seed.to_string())
                } else {
                    status.leader.and_then(|leader| {
                        status
                            .members
                            .iter()
                            .find(|m| m.id == leader)
                            .map(|m| m.http_addr.clone())
                    })
                };
                match (leader, admin_token) {
                    (_, None) => {
                        return Err(format!(
                            "node {me} is not a member of the cluster at {seed}, and this \
                             node's config has no admin_token_path to ask the leader with. Add \
                             it first: `dkv-cli member add {me} --resp {} --http {} --learner`",
                            config.resp_addr, config.http_addr
                        ))
                    }
                    (None, Some(_)) => last_error = "the seed knows no leader".to_string(),
                    (Some(leader), Some(token)) => match ask_to_add(&leader, config, token) {
                        Ok(()) => {
                            tracing::info!(id = me, leader, "added as a learner");
                            return Ok(peers);
                        }
                        Err((retry, e)) if retry => last_error = e,
                        Err((_, e)) => return Err(e),
                    },
                }
            }
            Err(e) => last_error = format!("{seed}: {e}"),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "could not join through {seed} within {JOIN_TIMEOUT:?}: {last_error}"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One add request to the leader's operator routes; `Err((retry, why))`.
fn ask_to_add(leader: &str, config: &Config, token: &str) -> Result<(), (bool, String)> {
    let path = format!(
        "/admin/members?op=add&id={}&resp={}&http={}",
        config.id, config.resp_addr, config.http_addr
    );
    let (code, body) = http_request(
        "POST",
        host_of(leader),
        &path,
        &format!("Authorization: Bearer {token}\r\n"),
        Duration::from_secs(15),
    )
    .map_err(|e| (true, format!("{leader}: {e}")))?;
    let text = String::from_utf8_lossy(&body).trim_end().to_string();
    match code {
        200 => Ok(()),
        400 | 401 | 403 => Err((false, format!("the leader refused: HTTP {code}: {text}"))),
        _ => Err((true, format!("HTTP {code}: {text}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_fresh_only_when_missing_or_empty() {
        let dir = std::env::temp_dir().join(format!("dkv-fresh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(is_fresh(&dir));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert!(is_fresh(&dir));
        std::fs::write(dir.join("IDENTITY"), b"x").expect("write");
        assert!(!is_fresh(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn status_json_with_members_parses() {
        let json = br#"{"id":2,"role":"Leader","leader":2,"commit_index":9,
            "members":[{"id":1,"voter":true,"resp_addr":"127.0.0.1:7001","http_addr":"127.0.0.1:8001"}]}"#;
        let status: PeerStatus = serde_json::from_slice(json).expect("parse");
        assert_eq!(status.members[0].id, 1);
        assert!(status.members[0].voter);
        assert_eq!(status.commit_index, 9);
    }
}
