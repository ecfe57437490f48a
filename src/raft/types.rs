//! Vocabulary of the consensus core: newtypes for what must not be mixed, log
//! entries and the hard state that must be durable before anything depending on
//! it leaves the node.

use core::net::SocketAddr;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A Raft term (§5.1). Terms only grow on a node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the replicated log (1-based; 0 means "before the first entry").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

/// A cluster member's id, as written in the config.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Display for LogIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// The empty entry a new leader appends at the start of its term (§8), so that
    /// entries of earlier terms can commit and reads can be served.
    Noop,
    /// Client data: opaque bytes for the state machine.
    Normal,
    /// A membership change: the payload is an encoded [`Membership`], which
    /// takes effect on every node as soon as the entry is in its log
    /// (thesis §4.1). Also what a leader appends instead of the no-op when
    /// its log holds no membership yet (the bootstrap membership).
    Membership,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// Its position in the log.
    pub index: LogIndex,
    /// No-op or client data.
    pub kind: EntryKind,
    /// Opaque payload (empty for `Noop`).
    pub data: Bytes,
}

/// The state Figure 2 calls "persistent state on all servers", plus the commit
/// index so a restart can replay committed entries without waiting for a leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this server has seen.
    pub term: Term,
    /// Candidate that received this server's vote in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// Highest index known committed when this was written.
    pub commit_index: LogIndex,
}

/// Where a snapshot of the state machine stands in the log: it replaces every
/// entry up to and including `last_included_index` (§7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot covers.
    pub last_included_index: LogIndex,
    /// Term of that entry.
    pub last_included_term: Term,
    /// The membership in effect as of that entry (the latest membership
    /// entry at or before it, or the bootstrap one).
    pub membership: Membership,
}

/// One member of the cluster: voter or learner, and where it listens. The
/// core only reads `voter`; the addresses ride along in the log and in
/// snapshots so every node learns every member's addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Counts toward quorums (else a learner: replicated to, never counted).
    pub voter: bool,
    /// Its RESP (client and peer) address.
    pub resp_addr: SocketAddr,
    /// Its HTTP address.
    pub http_addr: SocketAddr,
}

/// The cluster's members: the payload of an [`EntryKind::Membership`] entry
/// and part of every snapshot's meta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Every member by id.
    pub members: BTreeMap<NodeId, Member>,
}

/// A membership payload that does not decode (a peer's garbage, or a
/// corrupt entry): refused, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable membership: {0}")]
pub struct MembershipDecodeError(pub String);

impl Membership {
    /// A membership of voters `ids` with unspecified addresses
    /// (`0.0.0.0:0`): for tests, benches and tools that need no addresses.
    pub fn voters_only(ids: impl IntoIterator<Item = NodeId>) -> Membership {
        let unknown = SocketAddr::from((core::net::Ipv4Addr::UNSPECIFIED, 0));
        let member = Member {
            voter: true,
            resp_addr: unknown,
            http_addr: unknown,
        };
        Membership {
            members: ids.into_iter().map(|id| (id, member.clone())).collect(),
        }
    }

    /// The voters, in id order.
    pub fn voters(&self) -> Vec<NodeId> {
        self.voter_ids().collect()
    }

    /// The voters, in id order, without allocating (quorums are counted on
    /// every acknowledgement).
    pub fn voter_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| m.voter)
            .map(|(id, _)| *id)
    }

    /// The learners (non-voting members), in id order.
    pub fn learners(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, m)| !m.voter)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Is `id` a voter?
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.members.get(&id).is_some_and(|m| m.voter)
    }

    /// Is `id` a member (voter or learner)?
    pub fn contains(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }

    /// The entry payload (postcard, like the rest of the log).
    pub fn encode(&self) -> Bytes {
        // Serializing a map of plain values into a Vec cannot fail.
        Bytes::from(postcard::to_stdvec(self).unwrap_or_default())
    }

    /// Decodes an entry payload; trailing bytes are an error.
    ///
    /// # Errors
    /// [`MembershipDecodeError`] on anything that is not exactly one
    /// encoded membership.
    pub fn decode(bytes: &[u8]) -> Result<Membership, MembershipDecodeError> {
        let (membership, rest) = postcard::take_from_bytes::<Membership>(bytes)
            .map_err(|e| MembershipDecodeError(e.to_string()))?;
        if !rest.is_empty() {
            return Err(MembershipDecodeError(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        Ok(membership)
    }

    /// What every membership put in a log must satisfy: at least one voter,
    /// no node id 0.
    ///
    /// # Errors
    /// Why it is not one.
    pub fn check(&self) -> Result<(), &'static str> {
        if !self.members.values().any(|m| m.voter) {
            return Err("a membership needs at least one voter");
        }
        if self.members.contains_key(&NodeId(0)) {
            return Err("node id 0 is not a valid member");
        }
        Ok(())
    }
}

/// What a node restores from its store at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The newest durable snapshot, if any: the state machine is restored from it
    /// and `entries` continue after it.
    pub snapshot: Option<SnapshotMeta>,
    /// The durable log, contiguous from the entry after the snapshot (or from
    /// index 1 without one).
    pub entries: Vec<Entry>,
}
