//! Membership changes (thesis ch. 4, single-server): learners, promotion,
//! removal (of a follower and of the leader), rollback of a truncated
//! change, the one-at-a-time and own-term-commit rules, and nodes that join
//! with no membership and learn it from the log or from a snapshot.

use bytes::Bytes;

use super::network::{config, envelope, production_config, Network};
use crate::raft::{Error, LogIndex, Member, Membership, Message, NodeId, Role, Term};

/// `m` with `id` added as a learner.
fn with_learner(m: &Membership, id: u64) -> Membership {
    let mut m = m.clone();
    let addr = core::net::SocketAddr::from(([127, 0, 0, 1], 7000 + id as u16));
    m.members.insert(
        NodeId(id),
        Member {
            voter: false,
            resp_addr: addr,
            http_addr: addr,
        },
    );
    m
}

/// `m` with `id` made a voter.
fn promoted(m: &Membership, id: u64) -> Membership {
    let mut m = m.clone();
    if let Some(member) = m.members.get_mut(&NodeId(id)) {
        member.voter = true;
    }
    m
}

/// `m` without `id`.
fn without(m: &Membership, id: u64) -> Membership {
    let mut m = m.clone();
    m.members.remove(&NodeId(id));
    m
}

/// Proposes on `leader` the membership `next` makes of its current one.
fn change(
    net: &mut Network,
    leader: u64,
    next: impl FnOnce(&Membership) -> Membership,
) -> Result<LogIndex, Error> {
    let current = net.raft(leader).membership().clone();
    net.raft(leader).propose_membership(next(&current))
}

/// The config of a node started to join: no bootstrap voters.
fn joining(id: u64) -> crate::raft::Config {
    crate::raft::Config {
        voters: Vec::new(),
        ..config(id, 0)
    }
}

/// A 3-node cluster led by node 1, its first entries committed.
fn led_by_1() -> Network {
    let mut net = Network::new(3, 7);
    net.elect(1);
    net.settle();
    net
}

fn propose(net: &mut Network, id: u64, data: &str) -> LogIndex {
    let (index, _) = net
        .raft(id)
        .propose(Bytes::from(data.to_string()))
        .expect("leader");
    net.settle();
    index
}

fn campaign_messages(net: &Network) -> usize {
    net.in_flight
        .iter()
        .filter(|e| {
            matches!(
                e.message,
                Message::RequestVote { .. } | Message::PreVote { .. }
            )
        })
        .count()
}

/// A node that joins with no membership catches up as a learner (from the
/// log: it learns the membership from the entries), is promoted, and from
/// then on a commit needs 3 of the 4 voters; as a learner it counted for
/// nothing.
#[test]
fn learner_catches_up_then_promotion_needs_the_new_majority() {
    let mut net = led_by_1();
    propose(&mut net, 1, "a");
    net.add_node(4, joining(4));
    assert!(!net.raft(4).status().voter && !net.raft(4).status().learner);
    let current = net.raft(1).membership().clone();
    let index = net
        .raft(1)
        .propose_membership(with_learner(&current, 4))
        .expect("a learner may join");
    net.settle();
    assert!(net.raft(1).membership_committed());
    assert_eq!(net.log(4), net.log(1), "the learner caught up");
    let s4 = net.raft(4).status();
    assert!(s4.learner && !s4.voter, "{s4:?}");
    assert_eq!(s4.membership_index, index);
    let leader_membership = net.raft(1).membership().clone();
    assert_eq!(net.raft(4).membership(), &leader_membership);
    assert_eq!(net.node(4).memberships.last(), Some(&leader_membership));

    // A learner is replicated to but never counted: leader + learner is
    // not a majority of {1, 2, 3}.
    net.cut(1, 2);
    net.cut(1, 3);
    let before = net.raft(1).status().commit_index;
    net.raft(1).propose(Bytes::from("b")).expect("leader");
    net.settle();
    assert_eq!(net.raft(1).status().commit_index, before);
    assert_eq!(net.log(4).len(), net.log(1).len(), "replicated to");
    net.heal();
    for _ in 0..3 {
        net.tick_all();
    }
    assert!(net.raft(1).status().commit_index > before);

    // Promote: now four voters, quorum 3.
    change(&mut net, 1, |m| promoted(m, 4)).expect("promotion");
    net.settle();
    assert!(net.raft(1).membership_committed());
    assert_eq!(net.raft(1).voter_count(), 4);
    assert!(net.raft(4).status().voter);
    net.cut(1, 3);
    net.cut(1, 4);
    let before = net.raft(1).status().commit_index;
    net.raft(1).propose(Bytes::from("c")).expect("leader");
    net.settle();
    assert_eq!(
        net.raft(1).status().commit_index,
        before,
        "2 of 4 voters are not a majority"
    );
    net.heal();
    net.cut(1, 3);
    for _ in 0..3 {
        net.tick_all();
    }
    assert!(
        net.raft(1).status().commit_index > before,
        "1, 2 and 4 are a majority of 4"
    );
}

/// A removed follower no longer counts, learns its removal from the log,
/// and never campaigns again.
#[test]
fn removing_a_follower() {
    let mut net = led_by_1();
    change(&mut net, 1, |m| without(m, 3)).expect("removal");
    net.settle();
    assert!(net.raft(1).membership_committed());
    assert_eq!(net.raft(1).voter_count(), 2);
    assert!(!net.raft(3).status().voter, "3 got its removal");
    assert!(!net.raft(3).membership().contains(NodeId(3)));
    // 1 and 2 are the whole majority now.
    net.isolate(3);
    let index = propose(&mut net, 1, "x");
    assert!(net.raft(1).status().commit_index >= index);
    // Nobody replicates to 3 any more, and it never campaigns.
    for _ in 0..100 {
        net.raft(3).tick();
        net.process(3);
    }
    assert_eq!(campaign_messages(&net), 0);
    assert_eq!(net.raft(3).status().role, Role::Follower);
}

/// The leader removing itself leads (without counting itself) until the
/// removal commits, then steps down and hands over; it never campaigns
/// again, and the others elect a leader and go on.
#[test]
fn removing_the_leader() {
    let mut net = led_by_1();
    let current = net.raft(1).membership().clone();
    let index = net
        .raft(1)
        .propose_membership(without(&current, 1))
        .expect("the leader may remove itself");
    assert_eq!(net.raft(1).status().role, Role::Leader, "until it commits");
    assert_eq!(net.raft(1).voter_count(), 2);
    net.settle();
    let s1 = net.raft(1).status();
    assert_eq!(s1.role, Role::Follower, "{s1:?}");
    assert!(s1.commit_index >= index && !s1.voter);
    // TimeoutNow made one of the others campaign at once.
    let leader = net.leader().expect("a new leader");
    assert!(leader == 2 || leader == 3, "{leader}");
    assert!(net.raft(leader).status().term > s1.term);
    let index = propose(&mut net, leader, "after");
    for id in [2, 3] {
        assert!(net.raft(id).status().commit_index >= index);
    }
    net.isolate(1);
    for _ in 0..100 {
        net.raft(1).tick();
        net.process(1);
    }
    assert_eq!(
        campaign_messages(&net),
        0,
        "a removed leader never campaigns"
    );
}

/// §4.1: a membership entry takes effect when appended and is rolled back
/// when a new leader truncates it away; the driver is told both times.
#[test]
fn a_truncated_membership_entry_rolls_back() {
    let mut net = led_by_1();
    let old = net.raft(1).membership().clone();
    net.isolate(1);
    net.raft(1)
        .propose_membership(without(&old, 3))
        .expect("appended");
    net.process(1);
    assert_eq!(net.raft(1).voter_count(), 2, "in effect once appended");
    assert!(!net.raft(1).membership_committed());
    assert_eq!(net.node(1).memberships.last(), Some(&without(&old, 3)));
    // 2 and 3 elect 2, which commits its no-op over index 1's entry.
    net.elect(2);
    net.settle();
    net.heal();
    for _ in 0..3 {
        net.tick_all();
    }
    assert_eq!(net.raft(1).status().leader, Some(NodeId(2)));
    assert_eq!(net.raft(1).membership(), &old, "rolled back");
    assert_eq!(net.node(1).memberships.last(), Some(&old));
    assert_eq!(net.log(1), net.log(2));
}

/// One change at a time, only once the leader committed an entry of its
/// term, and only legal single-server steps.
#[test]
fn proposals_are_refused_while_a_change_is_pending_or_before_an_own_term_commit() {
    let mut net = Network::new(3, 3);
    // Elected, but its first entry is not committed yet.
    for _ in 0..=super::network::ELECTION_MAX {
        net.raft(1).tick();
        net.process(1);
        if !net.in_flight.is_empty() {
            break;
        }
    }
    while net.raft(1).status().role != Role::Leader {
        assert!(net.deliver_one(), "1 wins");
    }
    let current = net.raft(1).membership().clone();
    assert_eq!(
        net.raft(1).propose_membership(without(&current, 3)),
        Err(Error::MembershipChangeInProgress),
        "before an entry of its term commits"
    );
    net.settle();
    assert_eq!(
        net.raft(2)
            .propose_membership(without(&current, 3))
            .map(|_| ()),
        Err(Error::NotLeader {
            leader: Some(NodeId(1))
        })
    );
    // Two voters at once, or none left.
    let mut two = with_learner(&with_learner(&current, 4), 5);
    two = promoted(&promoted(&two, 4), 5);
    assert!(matches!(
        net.raft(1).propose_membership(two),
        Err(Error::InvalidMembership(_))
    ));
    let mut none = current.clone();
    for member in none.members.values_mut() {
        member.voter = false;
    }
    assert!(matches!(
        net.raft(1).propose_membership(none),
        Err(Error::InvalidMembership(_))
    ));
    // One pending change blocks the next until it commits.
    net.isolate(2);
    net.isolate(3);
    net.raft(1)
        .propose_membership(without(&current, 3))
        .expect("first change");
    let next = without(&without(&current, 3), 2);
    assert_eq!(
        net.raft(1).propose_membership(next.clone()),
        Err(Error::MembershipChangeInProgress)
    );
    net.heal();
    for _ in 0..3 {
        net.tick_all();
    }
    assert!(net.raft(1).membership_committed());
    net.raft(1).propose_membership(next).expect("now allowed");
}

/// A learner never campaigns, but answers votes like any server (thesis
/// §4.1): it may be a voter by an entry it has not received yet, and the
/// candidate counts only its own voters.
#[test]
fn a_learner_never_campaigns_but_votes() {
    let mut net = led_by_1();
    net.add_node(4, joining(4));
    change(&mut net, 1, |m| with_learner(m, 4)).expect("learner");
    net.settle();
    assert!(net.raft(4).status().learner);
    net.isolate(4);
    for _ in 0..200 {
        net.raft(4).tick();
        net.process(4);
    }
    assert_eq!(campaign_messages(&net), 0);
    let term = net.raft(4).status().term;
    let last = net.raft(4).status().last_log_index;
    for message in [
        Message::RequestVote {
            term: Term(term.0 + 1),
            last_log_index: last,
            last_log_term: term,
            transfer: false,
        },
        Message::PreVote {
            term: Term(term.0 + 1),
            last_log_index: last,
            last_log_term: term,
        },
    ] {
        net.heal();
        net.in_flight.clear();
        net.raft(4).step(envelope(2, 4, message)).expect("accepted");
        net.process(4);
        let granted = net.in_flight.iter().any(|e| {
            matches!(
                e.message,
                Message::RequestVoteResponse {
                    vote_granted: true,
                    ..
                } | Message::PreVoteResponse {
                    vote_granted: true,
                    ..
                }
            )
        });
        assert!(granted, "a learner refused an up-to-date candidate");
    }
}

/// A node that joins after the leader compacted its log learns the
/// membership (itself a learner) from the snapshot's meta.
#[test]
fn a_joining_node_learns_the_membership_from_a_snapshot() {
    let mut net = led_by_1();
    propose(&mut net, 1, "a");
    net.add_node(4, joining(4));
    net.isolate(4);
    let current = net.raft(1).membership().clone();
    let change = net
        .raft(1)
        .propose_membership(with_learner(&current, 4))
        .expect("learner");
    net.settle();
    propose(&mut net, 1, "b");
    net.compact(1);
    let snapshot_index = net
        .node(1)
        .snapshot
        .as_ref()
        .expect("compacted")
        .0
        .last_included_index;
    assert!(snapshot_index > change);
    net.heal();
    for _ in 0..3 {
        net.tick_all();
    }
    let node = net.node(4);
    let (meta, _) = node.snapshot.as_ref().expect("installed");
    assert!(meta.membership.contains(NodeId(4)));
    let s4 = node.raft.status();
    assert!(s4.learner, "{s4:?}");
    assert_eq!(s4.membership_index, snapshot_index, "set by the snapshot");
    assert_eq!(node.raft.membership(), &with_learner(&current, 4));
}

/// Hostile membership payloads are refused, never a panic or a new
/// membership in effect.
#[test]
fn undecodable_membership_entries_are_refused() {
    let mut net = led_by_1();
    let leader_term = net.raft(1).status().term;
    let last = net.raft(2).status().last_log_index;
    let bad = [
        Bytes::from_static(b"\xff\xff\xff"),
        Membership::default().encode(),
        {
            let mut v = net.raft(1).membership().encode().to_vec();
            v.push(0);
            Bytes::from(v)
        },
    ];
    for data in bad {
        let message = Message::AppendEntries {
            term: leader_term,
            prev_log_index: last,
            prev_log_term: leader_term,
            entries: vec![crate::raft::Entry {
                term: leader_term,
                index: LogIndex(last.0 + 1),
                kind: crate::raft::EntryKind::Membership,
                data,
            }],
            leader_commit: last,
            read_ctx: 0,
        };
        assert!(matches!(
            net.raft(2).step(envelope(1, 2, message)),
            Err(Error::Refused { .. })
        ));
        assert_eq!(net.raft(2).status().last_log_index, last);
    }
}

/// With pre-vote and check-quorum (the production settings), a removed
/// node that never learned its removal cannot disrupt the cluster: its
/// pre-votes are refused while the leader is heard from.
#[test]
fn a_removed_node_that_missed_its_removal_does_not_disrupt() {
    let mut net = Network::with_config(3, 11, production_config);
    net.elect(1);
    net.settle();
    net.isolate(3);
    let current = net.raft(1).membership().clone();
    net.raft(1)
        .propose_membership(without(&current, 3))
        .expect("removal");
    net.settle();
    assert!(net.raft(1).membership_committed());
    assert!(net.raft(3).status().voter, "3 did not hear of it");
    let term = net.raft(1).status().term;
    // 3 times out again and again; once healed, its pre-votes reach 1 and 2.
    for _ in 0..60 {
        net.raft(3).tick();
        net.process(3);
    }
    net.heal();
    for _ in 0..60 {
        net.tick_all();
    }
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.raft(1).status().term, term, "no election happened");
    assert_eq!(net.raft(2).status().term, term);
}

/// Delivers what is in flight (and what that causes) except messages to
/// `held_for`, which queue in `held` in order: links are FIFO, so whatever is
/// sent to that node later goes behind what it has not yet received.
fn deliver_holding(net: &mut Network, held_for: u64, held: &mut Vec<crate::raft::Envelope>) {
    while let Some(envelope) = net.in_flight.pop_front() {
        if envelope.to == NodeId(held_for) {
            held.push(envelope);
        } else {
            net.deliver(envelope);
        }
    }
}

/// Delivers what was held back for 3, settles, and checks that 3 has the
/// commit index of its removal at `index` and knows it is no voter.
fn deliver_removal(net: &mut Network, to_3: Vec<crate::raft::Envelope>, index: LogIndex) {
    for envelope in to_3 {
        net.deliver(envelope);
    }
    net.settle();
    let s3 = net.raft(3).status();
    assert!(s3.commit_index >= index, "{s3:?}");
    assert!(!s3.voter, "3 learnt its removal: {s3:?}");
}

/// The removal commits on the other follower's ack while the removed one's
/// ack is still on its way: the leader still sends it the commit index that
/// covers its removal, so it learns it and does not sit outside the cluster
/// believing itself a voter. (A membership test under load caught a removed
/// follower stuck at the commit index before its removal.)
#[test]
fn a_removed_follower_whose_ack_comes_last_still_learns_its_removal() {
    let mut net = led_by_1();
    let index = change(&mut net, 1, |m| without(m, 3)).expect("removal");
    net.process(1);
    // 2 gets the entry and its ack commits the removal; 3's copy waits.
    let mut to_3 = Vec::new();
    deliver_holding(&mut net, 3, &mut to_3);
    assert!(!to_3.is_empty(), "1 sent 3 the removal");
    assert!(net.raft(1).status().commit_index >= index);
    assert!(net.raft(1).membership_committed());
    deliver_removal(&mut net, to_3, index);
    assert!(!net.raft(3).membership().contains(NodeId(3)));
}

/// As above, with an earlier entry unacknowledged by the removed follower
/// when the removal is proposed: Nagle's rule keeps the removal entry back
/// for 3 until that ack, which now comes after the removal committed. The
/// last append carries the entry itself too. (The integration membership
/// test caught this: the removed node stopped one entry short.)
#[test]
fn a_removed_follower_behind_by_the_removal_entry_still_gets_it() {
    let mut net = led_by_1();
    net.raft(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    net.process(1);
    let mut to_3 = Vec::new();
    deliver_holding(&mut net, 3, &mut to_3);
    let index = change(&mut net, 1, |m| without(m, 3)).expect("removal");
    net.process(1);
    deliver_holding(&mut net, 3, &mut to_3);
    assert!(net.raft(1).membership_committed());
    deliver_removal(&mut net, to_3, index);
}

/// Ticks `id` alone until it campaigns (or leads), then settles; up to a
/// few rounds (a round may be lost to a term whose vote went elsewhere).
fn campaign_until_leader(net: &mut Network, id: u64) {
    for _ in 0..4 {
        for _ in 0..=super::network::ELECTION_MAX {
            net.raft(id).tick();
            net.process(id);
            if net.raft(id).status().role != Role::Follower {
                break;
            }
        }
        net.settle();
        if net.raft(id).status().role == Role::Leader {
            return;
        }
    }
}

fn break_rules(net: &mut Network, ids: &[u64], breaks: crate::raft::RuleBreaks) {
    for &id in ids {
        net.raft(id).set_rule_breaks(breaks);
    }
}

/// Thesis §4.1, rule break (a) of issue 18: two voters added without
/// waiting for the first change to commit. Old {1,2,3} and newest
/// {1,2,3,4,5} have disjoint majorities ({2,3} and {1,4,5}), and both
/// elect a leader in term 2. Returns the leaders of term 2.
fn two_changes_at_once(broken: bool) -> Vec<u64> {
    let mut net = led_by_1();
    net.add_node(4, joining(4));
    net.add_node(5, joining(5));
    for id in [4, 5] {
        let current = net.raft(1).membership().clone();
        net.raft(1)
            .propose_membership(with_learner(&current, id))
            .expect("learner");
        net.settle();
    }
    let breaks = crate::raft::RuleBreaks {
        concurrent_membership_changes: broken,
        ..Default::default()
    };
    break_rules(&mut net, &[1], breaks);
    net.cut(1, 2);
    net.cut(1, 3);
    let current = net.raft(1).membership().clone();
    let first = promoted(&current, 4);
    net.raft(1)
        .propose_membership(first.clone())
        .expect("first change");
    let second = net.raft(1).propose_membership(promoted(&first, 5));
    assert_eq!(second.is_ok(), broken, "{second:?}");
    net.settle();
    // {1, 4, 5} | {2, 3}
    for (a, b) in [(2, 4), (2, 5), (3, 4), (3, 5)] {
        net.cut(a, b);
    }
    campaign_until_leader(&mut net, 2);
    campaign_until_leader(&mut net, 4);
    let term = Term(2);
    net.nodes
        .values()
        .map(|n| n.raft.status())
        .filter(|s| s.role == Role::Leader && s.term == term)
        .map(|s| s.id.0)
        .collect()
}

#[test]
fn two_changes_at_once_elect_two_leaders_in_one_term() {
    assert_eq!(two_changes_at_once(false).len(), 1, "one leader: 2");
    let leaders = two_changes_at_once(true);
    assert_eq!(leaders, vec![2, 4], "the rule break is caught");
}

/// Thesis §4.1's bug, rule break (b) of issue 18: a new leader changes the
/// membership before committing an entry of its term. From {1,2,3,4}: 1
/// adds 5 (the entry reaches only 5), 1 stops; 2 is elected by 2, 3, 4,
/// appends its no-op and at once removes 4, and commits that on {2,3} (a
/// majority of {1,2,3}) without 4 seeing a term-2 entry; 1 comes back with
/// its older change and wins term 3 with 1, 4 and 5 (a majority of
/// {1,2,3,4,5}), although it lacks the committed removal. Returns whether a
/// leader lacks a committed entry (Leader Completeness, §5.4).
fn change_before_own_term_commit(broken: bool) -> bool {
    let mut net = Network::new(4, 5);
    net.elect(1);
    net.settle();
    net.add_node(5, joining(5));
    let breaks = crate::raft::RuleBreaks {
        change_before_own_term_commit: broken,
        ..Default::default()
    };
    break_rules(&mut net, &[1, 2, 3, 4], breaks);
    // 1 adds voter 5; only 5 gets it.
    for other in [2, 3, 4] {
        net.cut(1, other);
    }
    let c0 = net.raft(1).membership().clone();
    let mut c1 = c0.clone();
    c1.members.insert(NodeId(5), {
        let mut m = c0.members[&NodeId(1)].clone();
        m.voter = true;
        m
    });
    net.raft(1).propose_membership(c1).expect("add voter 5");
    net.settle();
    assert_eq!(net.log(5).len(), net.log(1).len());
    net.isolate(1);
    // 2 wins term 2 with 3 and 4; then 4 hears nothing more.
    for _ in 0..=super::network::ELECTION_MAX {
        net.raft(2).tick();
        net.process(2);
        if net.raft(2).status().role == Role::Candidate {
            break;
        }
    }
    while net.raft(2).status().role != Role::Leader {
        assert!(net.deliver_one(), "2 wins term 2");
    }
    net.cut(2, 4);
    net.cut(3, 4);
    net.in_flight.retain(|e| e.to != NodeId(4));
    let c2 = without(&c0, 4);
    let change = net.raft(2).propose_membership(c2);
    assert_eq!(change.is_ok(), broken, "{change:?}");
    net.settle();
    // What is committed now, on 2.
    let committed = net.raft(2).status().commit_index;
    let committed_log: Vec<_> = net
        .log(2)
        .into_iter()
        .filter(|e| e.index <= committed)
        .collect();
    // 1 returns, cut off from 2 and 3: {1, 4, 5} | {2, 3}.
    net.heal();
    for (a, b) in [(1, 2), (1, 3), (2, 4), (2, 5), (3, 4), (3, 5)] {
        net.cut(a, b);
    }
    campaign_until_leader(&mut net, 1);
    let leader_log = net.log(1);
    net.raft(1).status().role == Role::Leader
        && committed_log
            .iter()
            .any(|e| leader_log.get(e.index.0 as usize - 1) != Some(e))
}

#[test]
fn a_change_before_an_own_term_commit_loses_a_committed_entry() {
    assert!(
        !change_before_own_term_commit(false),
        "with the rule, every leader holds every committed entry"
    );
    assert!(
        change_before_own_term_commit(true),
        "the rule break is caught: a leader lacks a committed entry"
    );
}
