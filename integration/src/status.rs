//! The node's `GET /status` document, parsed leniently: unknown fields are ignored,
//! a missing required field is an error naming the field and the body.

use anyhow::{Context, Result};
use serde_json::Value;

/// A node's Raft role as reported by `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The node is the leader of its term.
    Leader,
    /// The node follows (or waits for) a leader.
    Follower,
    /// The node is campaigning.
    Candidate,
    /// Anything else the server reports (e.g. `PreCandidate`, `Learner`).
    Other(String),
}

/// One `/status` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Raft id of the answering node.
    pub id: u64,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: u64,
    /// The leader it knows of, if any.
    pub leader: Option<u64>,
    /// That leader's RESP address, if known.
    pub leader_resp_addr: Option<String>,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied to the state machine.
    pub last_applied: u64,
    /// Last index in the node's log.
    pub last_log_index: u64,
    /// True while the WAL is being replayed at start.
    pub loading: bool,
    /// Leader changes this node has observed.
    pub leader_changes: u64,
    /// The voters of the membership in effect on this node (ids, ascending).
    pub voters: Vec<u64>,
    /// Its learners (ids, ascending).
    pub learners: Vec<u64>,
}

impl Status {
    /// Parse a `/status` JSON body.
    ///
    /// # Errors
    /// Not JSON, or a required field missing or of the wrong type.
    pub fn parse(body: &str) -> Result<Status> {
        let v: Value = serde_json::from_str(body)
            .with_context(|| format!("/status body is not JSON: {body:?}"))?;
        let u = |name: &str| -> Result<u64> {
            v.get(name)
                .and_then(Value::as_u64)
                .with_context(|| format!("/status field {name:?} missing or not a u64 in {body}"))
        };
        let opt_u = |name: &str| -> Result<Option<u64>> {
            match v.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x.as_u64().map(Some).with_context(|| {
                    format!("/status field {name:?} is neither null nor a u64 in {body}")
                }),
            }
        };
        let role = match v.get("role").and_then(Value::as_str) {
            Some("Leader") => Role::Leader,
            Some("Follower") => Role::Follower,
            Some("Candidate") => Role::Candidate,
            Some(other) => Role::Other(other.to_string()),
            None => anyhow::bail!("/status field \"role\" missing or not a string in {body}"),
        };
        Ok(Status {
            id: u("id")?,
            role,
            term: u("term")?,
            leader: opt_u("leader")?,
            leader_resp_addr: v
                .get("leader_resp_addr")
                .and_then(Value::as_str)
                .map(str::to_string),
            commit_index: u("commit_index")?,
            last_applied: u("last_applied")?,
            last_log_index: u("last_log_index")?,
            loading: v.get("loading").and_then(Value::as_bool).unwrap_or(false),
            leader_changes: u("leader_changes").unwrap_or(0),
            voters: members(&v, true),
            learners: members(&v, false),
        })
    }

    /// True if this node says it is the leader.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

/// The ids of `/status`'s `members` that are (or are not) voters.
fn members(v: &Value, voters: bool) -> Vec<u64> {
    let mut ids: Vec<u64> = v
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("voter").and_then(Value::as_bool) == Some(voters))
        .filter_map(|m| m.get("id").and_then(Value::as_u64))
        .collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_split_into_voters_and_learners() {
        let s = Status::parse(
            r#"{"id":1,"role":"Follower","term":3,"leader":2,"commit_index":10,
                "last_applied":9,"last_log_index":11,"members":[
                {"id":5,"voter":false,"resp_addr":"a","http_addr":"b"},
                {"id":2,"voter":true,"resp_addr":"a","http_addr":"b"},
                {"id":1,"voter":true,"resp_addr":"a","http_addr":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(s.voters, vec![1, 2]);
        assert_eq!(s.learners, vec![5]);
    }

    #[test]
    fn parses_the_documented_shape() {
        let s = Status::parse(
            r#"{"id":1,"role":"Leader","term":3,"leader":1,"leader_resp_addr":"127.0.0.1:7001",
                "commit_index":10,"last_applied":9,"last_log_index":11,"loading":false,
                "leader_changes":1}"#,
        )
        .unwrap();
        assert!(s.is_leader());
        assert_eq!(s.leader, Some(1));
        assert_eq!(
            (s.commit_index, s.last_applied, s.last_log_index),
            (10, 9, 11)
        );
    }

    #[test]
    fn null_leader_is_none_and_missing_fields_are_errors() {
        let s = Status::parse(
            r#"{"id":2,"role":"Follower","term":0,"leader":null,"leader_resp_addr":null,
                "commit_index":0,"last_applied":0,"last_log_index":0,"loading":true,
                "leader_changes":0}"#,
        )
        .unwrap();
        assert_eq!(s.leader, None);
        assert!(s.loading);
        let err = Status::parse(r#"{"id":2,"role":"Follower"}"#).unwrap_err();
        assert!(format!("{err:#}").contains("term"), "{err:#}");
    }
}
