//! Membership changes as the node sees them: the operator's change (add a
//! learner, promote, remove, move), turned into the next whole membership
//! the Raft core checks and appends (`raft` module docs, "Membership"), and
//! the table every part of the node reads the current members from.
//!
//! # Who reads the table
//!
//! The driver replaces it whenever the core reports a new membership in
//! effect (appended, received, rolled back or installed with a snapshot) and
//! re-points the transport at the same moment. Readers: the HTTP listener
//! (which senders count as members), the write path (the leader's RESP
//! address for `MOVED`), `CLUSTER SLOTS` and its kin, `/status`.
//!
//! # Rules the node adds to the core's
//!
//! - A learner is promoted only once its log is within
//!   [`PROMOTE_MAX_LAG_ENTRIES`] of the leader's commit index: promoting a
//!   learner far behind would make the new majority wait for it (thesis
//!   §4.2.1), so the change is refused and the operator (or `dkv-cli member
//!   add`, which retries) tries again.
//! - Adding a member never makes it a voter directly: it joins as a
//!   learner, catches up, and is promoted.
//! - An address change keeps the member's role; two members may not share
//!   an address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use crate::raft::{self, NodeId};

/// A learner whose log is further than this behind the leader's commit index
/// is not promoted yet.
pub const PROMOTE_MAX_LAG_ENTRIES: u64 = 1024;

/// One change an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// A new member, as a learner.
    AddLearner {
        /// Its id.
        id: NodeId,
        /// Its RESP address.
        resp_addr: SocketAddr,
        /// Its peer HTTP address.
        http_addr: SocketAddr,
    },
    /// A learner becomes a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// A member (voter or learner) leaves.
    Remove {
        /// The member.
        id: NodeId,
    },
    /// A member's addresses change; its role stays.
    Move {
        /// The member.
        id: NodeId,
        /// Its new RESP address.
        resp_addr: SocketAddr,
        /// Its new peer HTTP address.
        http_addr: SocketAddr,
    },
}

impl MemberChange {
    /// The member the change is about.
    pub fn id(&self) -> NodeId {
        match self {
            MemberChange::AddLearner { id, .. }
            | MemberChange::Promote { id }
            | MemberChange::Remove { id }
            | MemberChange::Move { id, .. } => *id,
        }
    }

    /// Whether `membership` already holds what this change asks for (so a
    /// retried request succeeds without a second entry).
    pub fn holds_in(&self, membership: &raft::Membership) -> bool {
        let member = membership.members.get(&self.id());
        match self {
            MemberChange::AddLearner {
                resp_addr,
                http_addr,
                ..
            }
            | MemberChange::Move {
                resp_addr,
                http_addr,
                ..
            } => member.is_some_and(|m| m.resp_addr == *resp_addr && m.http_addr == *http_addr),
            MemberChange::Promote { .. } => member.is_some_and(|m| m.voter),
            MemberChange::Remove { .. } => member.is_none(),
        }
    }
}

/// Why a membership change was not made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// Only the leader changes membership.
    #[error("node {me} is not the leader (leader: {leader:?})")]
    NotLeader {
        /// This node.
        me: NodeId,
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The change makes no sense for the current membership; retrying will
    /// not help.
    #[error("{0}")]
    Invalid(String),
    /// Not now: another change is in flight, the leader has not committed
    /// in its term yet, the learner is still catching up. Retry.
    #[error("{0}")]
    NotNow(String),
    /// The change may or may not have been made (leadership lost after the
    /// append): read the membership and retry if it is not there.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// The membership `change` leads to from `current`, or why it cannot.
/// `lag` says how far a member's log is behind the leader's commit index
/// (`None`: unknown, e.g. it never answered).
///
/// # Errors
/// [`MemberError::Invalid`] for a change that does not fit `current`;
/// [`MemberError::NotNow`] for a promotion of a learner still catching up.
pub fn next_membership(
    current: &raft::Membership,
    change: &MemberChange,
    lag: impl Fn(NodeId) -> Option<u64>,
) -> Result<raft::Membership, MemberError> {
    let invalid = |text: String| Err(MemberError::Invalid(text));
    let id = change.id();
    if id.0 == 0 {
        return invalid("node id 0 is not a valid member".to_string());
    }
    let clash = |resp: SocketAddr, http: SocketAddr| {
        current.members.iter().find(|(other, m)| {
            **other != id
                && (m.resp_addr == resp
                    || m.http_addr == http
                    || m.resp_addr == http
                    || m.http_addr == resp)
        })
    };
    let mut next = current.clone();
    match change {
        MemberChange::AddLearner {
            resp_addr,
            http_addr,
            ..
        } => {
            if current.contains(id) {
                return invalid(format!("node {id} is already a member"));
            }
            if resp_addr == http_addr {
                return invalid("the RESP and HTTP addresses must differ".to_string());
            }
            if let Some((other, _)) = clash(*resp_addr, *http_addr) {
                return invalid(format!("node {other} already uses one of these addresses"));
            }
            next.members.insert(
                id,
                raft::Member {
                    voter: false,
                    resp_addr: *resp_addr,
                    http_addr: *http_addr,
                },
            );
        }
        MemberChange::Promote { .. } => {
            let Some(member) = next.members.get_mut(&id) else {
                return invalid(format!("node {id} is not a member (add it first)"));
            };
            if member.voter {
                return invalid(format!("node {id} is already a voter"));
            }
            match lag(id) {
                Some(behind) if behind <= PROMOTE_MAX_LAG_ENTRIES => {}
                Some(behind) => {
                    return Err(MemberError::NotNow(format!(
                        "learner {id} is {behind} entries behind the leader; \
                         promote it once it has caught up"
                    )))
                }
                None => {
                    return Err(MemberError::NotNow(format!(
                        "learner {id} has not answered the leader yet (is it running?)"
                    )))
                }
            }
            member.voter = true;
        }
        MemberChange::Remove { .. } => {
            let Some(member) = next.members.remove(&id) else {
                return invalid(format!("node {id} is not a member"));
            };
            if member.voter && !next.members.values().any(|m| m.voter) {
                return invalid(format!("node {id} is the last voter"));
            }
        }
        MemberChange::Move {
            resp_addr,
            http_addr,
            ..
        } => {
            if resp_addr == http_addr {
                return invalid("the RESP and HTTP addresses must differ".to_string());
            }
            if let Some((other, _)) = clash(*resp_addr, *http_addr) {
                return invalid(format!("node {other} already uses one of these addresses"));
            }
            let Some(member) = next.members.get_mut(&id) else {
                return invalid(format!("node {id} is not a member"));
            };
            member.resp_addr = *resp_addr;
            member.http_addr = *http_addr;
        }
    }
    Ok(next)
}

/// The bootstrap membership from the config: this node and its peers, all
/// voters (what the first leader of a new cluster writes into the log).
pub fn bootstrap(config: &crate::config::Config) -> raft::Membership {
    let mut members = BTreeMap::new();
    members.insert(
        NodeId(config.id),
        raft::Member {
            voter: true,
            resp_addr: config.resp_addr,
            http_addr: config.http_addr,
        },
    );
    for peer in &config.peers {
        members.insert(
            NodeId(peer.id),
            raft::Member {
                voter: true,
                resp_addr: peer.resp_addr,
                http_addr: peer.http_addr,
            },
        );
    }
    raft::Membership { members }
}

/// The membership in effect on this node, shared by the driver (which
/// replaces it) and every reader; and, while it is not committed, the last
/// committed one, whose members are still peers (thesis §4.1: a leader
/// removing itself must still hear its followers' acknowledgements, and a
/// removed follower must still get the entry that removes it).
#[derive(Debug, Default)]
pub struct MemberTable {
    current: RwLock<Arc<raft::Membership>>,
    outgoing: RwLock<Option<Arc<raft::Membership>>>,
}

impl MemberTable {
    /// A table holding `membership`.
    pub fn new(membership: raft::Membership) -> MemberTable {
        MemberTable {
            current: RwLock::new(Arc::new(membership)),
            outgoing: RwLock::new(None),
        }
    }

    /// Sets the last committed membership while the one in effect is not
    /// committed, `None` once it is (driver only).
    pub(crate) fn set_outgoing(&self, outgoing: Option<raft::Membership>) {
        *self.outgoing.write().unwrap_or_else(|e| e.into_inner()) = outgoing.map(Arc::new);
    }

    /// Is `id` a member of the membership in effect, or of the committed one
    /// it is replacing? (Whom peer requests are accepted from.)
    pub fn is_peer(&self, id: NodeId) -> bool {
        self.contains(id)
            || self
                .outgoing
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|m| m.contains(id))
    }

    /// The membership now.
    pub fn get(&self) -> Arc<raft::Membership> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces it (driver only).
    pub(crate) fn set(&self, membership: raft::Membership) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(membership);
    }

    /// `id`'s RESP address, if it is a member.
    pub fn resp_addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .members
            .get(&id)
            .map(|m| m.resp_addr)
    }

    /// Is `id` a member (voter or learner)?
    pub fn contains(&self, id: NodeId) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn three() -> raft::Membership {
        let mut members = BTreeMap::new();
        for id in 1..=3u16 {
            members.insert(
                NodeId(u64::from(id)),
                raft::Member {
                    voter: true,
                    resp_addr: addr(7000 + id),
                    http_addr: addr(8000 + id),
                },
            );
        }
        raft::Membership { members }
    }

    fn add(id: u64, port: u16) -> MemberChange {
        MemberChange::AddLearner {
            id: NodeId(id),
            resp_addr: addr(7000 + port),
            http_addr: addr(8000 + port),
        }
    }

    #[test]
    fn a_member_joins_as_a_learner_and_is_promoted_once_caught_up() {
        let next = next_membership(&three(), &add(4, 4), |_| None).expect("add");
        assert_eq!(next.learners(), vec![NodeId(4)]);
        assert_eq!(next.voters().len(), 3);
        assert!(add(4, 4).holds_in(&next));
        let promote = MemberChange::Promote { id: NodeId(4) };
        assert!(matches!(
            next_membership(&next, &promote, |_| None),
            Err(MemberError::NotNow(_))
        ));
        assert!(matches!(
            next_membership(&next, &promote, |_| Some(PROMOTE_MAX_LAG_ENTRIES + 1)),
            Err(MemberError::NotNow(_))
        ));
        let promoted = next_membership(&next, &promote, |_| Some(3)).expect("promote");
        assert_eq!(promoted.voters().len(), 4);
        assert!(promote.holds_in(&promoted));
    }

    #[test]
    fn impossible_changes_are_refused_with_a_reason() {
        let invalid = |change: MemberChange, members: &raft::Membership| match next_membership(
            members,
            &change,
            |_| Some(0),
        ) {
            Err(MemberError::Invalid(text)) => text,
            other => panic!("{change:?}: expected Invalid, got {other:?}"),
        };
        let m = three();
        assert!(invalid(add(2, 9), &m).contains("already a member"));
        assert!(invalid(add(4, 1), &m).contains("node 1 already uses"));
        assert!(invalid(add(0, 9), &m).contains("node id 0"));
        assert!(invalid(MemberChange::Promote { id: NodeId(2) }, &m).contains("already a voter"));
        assert!(invalid(MemberChange::Promote { id: NodeId(7) }, &m).contains("not a member"));
        assert!(invalid(MemberChange::Remove { id: NodeId(7) }, &m).contains("not a member"));
        let mut one = m.clone();
        one.members.retain(|id, _| id.0 == 1);
        assert!(invalid(MemberChange::Remove { id: NodeId(1) }, &one).contains("last voter"));
        let moved = MemberChange::Move {
            id: NodeId(1),
            resp_addr: addr(7002),
            http_addr: addr(9001),
        };
        assert!(invalid(moved, &m).contains("node 2 already uses"));
    }

    #[test]
    fn members_of_the_replaced_membership_stay_peers_until_it_commits() {
        let table = MemberTable::new(three());
        let removed = next_membership(&three(), &MemberChange::Remove { id: NodeId(3) }, |_| None)
            .expect("remove 3");
        table.set_outgoing(Some(three()));
        table.set(removed);
        assert!(!table.contains(NodeId(3)));
        assert!(table.is_peer(NodeId(3)), "a removing leader must hear 3");
        assert!(!table.is_peer(NodeId(9)));
        table.set_outgoing(None);
        assert!(!table.is_peer(NodeId(3)));
        assert!(table.is_peer(NodeId(2)));
    }

    #[test]
    fn removal_and_moves_keep_the_rest() {
        let m = three();
        let removed =
            next_membership(&m, &MemberChange::Remove { id: NodeId(2) }, |_| None).expect("rm");
        assert_eq!(removed.voters(), vec![NodeId(1), NodeId(3)]);
        let moved = MemberChange::Move {
            id: NodeId(3),
            resp_addr: addr(7103),
            http_addr: addr(8103),
        };
        let after = next_membership(&m, &moved, |_| None).expect("move");
        assert!(after.is_voter(NodeId(3)));
        assert_eq!(after.members[&NodeId(3)].http_addr, addr(8103));
        assert!(moved.holds_in(&after) && !moved.holds_in(&m));
    }
}
