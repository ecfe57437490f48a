//! Leader lease (thesis §6.4.1): reads without a heartbeat round while a
//! majority acked recently enough.

use super::network::{lease_config, production_config, Network, ELECTION_MIN, HEARTBEAT};
use crate::raft::{Config, Error, InitialState, Message, Raft, Role};

/// §6.4.1: with the lease valid (a majority acked a heartbeat sent less than
/// `election_timeout_min - clock_drift_bound` ticks ago) and an own-term entry
/// committed, `read_index` is answered in the next Ready, before any message
/// is exchanged, at the commit index.
#[test]
fn read_is_answered_immediately_while_lease_is_valid() {
    let mut net = Network::with_config(3, 1, lease_config);
    net.elect(1);
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    let commit_index = net.raft(1).status().commit_index;
    net.raft(1).read_index(7).expect("leader");
    let ready = net.raft(1).ready();
    assert_eq!(ready.read_states.len(), 1);
    assert_eq!(
        (ready.read_states[0].ctx, ready.read_states[0].index),
        (7, commit_index)
    );
    net.raft(1).advance(ready);
}

/// §6.4.1: once the lease ran out (no acks for the lease duration) a read
/// falls back to a ReadIndex heartbeat round, answered only when a majority
/// acks it.
#[test]
fn expired_lease_falls_back_to_heartbeat_round() {
    let mut net = Network::with_config(3, 2, lease_config);
    net.elect(1);
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    net.isolate(1);
    let drift = lease_config(1, 3).clock_drift_bound_ticks;
    for _ in 0..ELECTION_MIN - drift {
        net.raft(1).tick();
        net.process(1);
    }
    assert_eq!(
        net.raft(1).status().role,
        Role::Leader,
        "check-quorum not yet"
    );
    net.raft(1).read_index(8).expect("leader");
    let ready = net.raft(1).ready();
    assert!(ready.read_states.is_empty(), "lease expired");
    assert!(ready
        .messages
        .iter()
        .any(|e| matches!(e.message, Message::AppendEntries { .. })));
    let round = ready.messages.clone();
    net.raft(1).advance(ready);
    net.heal();
    net.in_flight = round.into();
    net.settle();
    assert_eq!(net.node(1).read_states.last().map(|r| r.ctx), Some(8));
}

/// §6.4.1: a leader that started a leadership transfer serves no lease read
/// for the rest of its term (the target's election ignores stickiness).
#[test]
fn leadership_transfer_revokes_the_lease() {
    let mut net = Network::with_config(3, 3, lease_config);
    net.elect(1);
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    net.cut(1, 2);
    net.raft(1)
        .transfer_leader(crate::raft::NodeId(2))
        .expect("leader");
    net.raft(1).read_index(9).expect("leader");
    let ready = net.raft(1).ready();
    assert!(ready.read_states.is_empty());
    net.raft(1).advance(ready);
}

/// `lease_remaining_ticks` (direct reads in the node) agrees with
/// `read_index`: it counts down with the leader's ticks from the round a
/// majority acked, is `None` once that many ticks passed without acks, and
/// `None` on followers and after a transfer started.
#[test]
fn lease_remaining_ticks_counts_down_and_ends_with_the_lease() {
    let mut net = Network::with_config(3, 4, lease_config);
    net.elect(1);
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    let drift = lease_config(1, 3).clock_drift_bound_ticks;
    let full = net.raft(1).lease_remaining_ticks().expect("a fresh lease");
    assert!(
        full <= u64::from(ELECTION_MIN - drift) && full > 0,
        "remaining {full} beyond the lease length"
    );
    assert_eq!(
        net.raft(2).lease_remaining_ticks(),
        None,
        "followers hold no lease"
    );
    net.isolate(1);
    for k in 1..full {
        net.raft(1).tick();
        net.process(1);
        assert_eq!(net.raft(1).lease_remaining_ticks(), Some(full - k));
    }
    net.raft(1).tick();
    net.process(1);
    assert_eq!(
        net.raft(1).lease_remaining_ticks(),
        None,
        "the lease ran out"
    );
    // What read_index does at the same moment: no immediate answer.
    net.raft(1).read_index(3).expect("still leader");
    let ready = net.raft(1).ready();
    assert!(ready.read_states.is_empty());
    net.raft(1).advance(ready);

    let mut net = Network::with_config(3, 5, lease_config);
    net.elect(1);
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    assert!(net.raft(1).lease_remaining_ticks().is_some());
    net.cut(1, 2);
    net.raft(1)
        .transfer_leader(crate::raft::NodeId(2))
        .expect("leader");
    assert_eq!(
        net.raft(1).lease_remaining_ticks(),
        None,
        "a transfer revokes it"
    );
}

/// The lease relies on check-quorum's stickiness and needs a drift bound
/// below the minimum election timeout.
#[test]
fn lease_reads_require_check_quorum_and_a_drift_bound_below_timeout() {
    let bad = |config: Config| Raft::new(config, InitialState::default(), 1).err();
    let mut config = lease_config(1, 3);
    config.check_quorum = false;
    assert!(matches!(bad(config), Some(Error::InvalidConfig(_))));
    let mut config = lease_config(1, 3);
    config.clock_drift_bound_ticks = ELECTION_MIN;
    assert!(matches!(bad(config), Some(Error::InvalidConfig(_))));
    assert!(bad(production_config(1, 3)).is_none());
}

/// A stall of the leader's own (`skip_ticks`): the lease ages by it, so no
/// lease read is served past it, but check-quorum does not count it as the
/// followers' silence, and their acks queued meanwhile keep it leader.
#[test]
fn a_leaders_own_stall_ends_its_lease_but_not_its_leadership() {
    let mut net = Network::with_config(3, 4, lease_config);
    net.elect(1);
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    assert!(net.raft(1).lease_remaining_ticks().is_some());
    net.raft(1).skip_ticks(u64::from(ELECTION_MIN) * 3);
    assert_eq!(
        net.raft(1).lease_remaining_ticks(),
        None,
        "the lease outlived the stall"
    );
    // The next ordinary ticks: without the skip's allowance, check-quorum
    // would find both followers silent for three election timeouts.
    net.raft(1).tick();
    net.process(1);
    assert_eq!(net.raft(1).status().role, Role::Leader);
    net.raft(1).read_index(5).expect("leader");
    let ready = net.raft(1).ready();
    assert!(ready.read_states.is_empty(), "served from an expired lease");
    net.in_flight = ready.messages.clone().into();
    net.raft(1).advance(ready);
    net.settle();
    assert_eq!(net.node(1).read_states.last().map(|r| r.ctx), Some(5));
    assert_eq!(net.raft(1).status().role, Role::Leader);
}

/// A follower's own stall does not run its election timer: it campaigns
/// only after an election timeout of ordinary ticks without a leader.
#[test]
fn a_followers_own_stall_does_not_start_an_election() {
    let mut net = Network::with_config(3, 5, lease_config);
    net.elect(1);
    let term = net.raft(2).status().term;
    net.raft(2).skip_ticks(u64::from(ELECTION_MIN) * 10);
    net.raft(2).tick();
    let ready = net.raft(2).ready();
    assert!(
        !ready.messages.iter().any(|e| matches!(
            e.message,
            Message::PreVote { .. } | Message::RequestVote { .. }
        )),
        "a stalled follower campaigned"
    );
    net.raft(2).advance(ready);
    assert_eq!(net.raft(2).status().term, term);
}

/// Check-quorum still works after a stall: a leader cut off from both
/// followers steps down once an election timeout of ordinary ticks passed.
#[test]
fn an_isolated_leader_steps_down_after_a_stall_too() {
    let mut net = Network::with_config(3, 6, lease_config);
    net.elect(1);
    net.isolate(1);
    net.raft(1).skip_ticks(u64::from(ELECTION_MIN) * 3);
    for _ in 0..ELECTION_MIN {
        net.raft(1).tick();
        net.process(1);
    }
    assert_ne!(net.raft(1).status().role, Role::Leader);
}
