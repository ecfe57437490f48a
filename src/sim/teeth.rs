//! The simulator has teeth: with one rule broken at a time, some seed of the
//! CI range fails, and it fails the check that guards that rule. Each test
//! stops at the first failing seed and prints which check caught it.

use super::*;

/// Runs CI seeds (and CI steps) with `breaks` until one fails; returns it.
fn first_failure(breaks: Breaks) -> Failure {
    let opts = Options {
        steps: tests::CI_STEPS,
        breaks,
    };
    for seed in 0..tests::CI_SEEDS {
        if let Err(failure) = run(seed, opts) {
            println!("caught: {failure}");
            return failure;
        }
    }
    panic!("no seed of the CI range caught {breaks:?}");
}

fn assert_caught_by(breaks: Breaks, expected: &[Check]) {
    let failure = first_failure(breaks);
    assert!(
        expected.contains(&failure.violation.check),
        "{breaks:?} was caught by {:?}, expected one of {expected:?}: {failure}",
        failure.violation.check
    );
}

/// (a) §5.4.1: a voter that skips the up-to-date check elects a leader
/// missing committed entries.
#[test]
fn skipping_the_voting_restriction_is_caught() {
    let mut breaks = Breaks::default();
    breaks.raft.skip_voting_restriction = true;
    assert_caught_by(
        breaks,
        &[
            Check::LeaderCompleteness,
            Check::StateMachineSafety,
            Check::LostWrite,
        ],
    );
}

/// (b) §5.4.2 / Figure 8: committing an earlier term's entry by counting lets
/// a later leader overwrite a committed entry.
///
/// Random schedules rarely line this up (a leader must get an old-term entry
/// onto a majority before its no-op, then lose to the node holding the
/// conflicting entry), so this runs the scripted Figure 8 schedule
/// (`figure8.rs`) on every seed tried: each must be caught. The same
/// schedule with the rule intact passes
/// (`figure8::figure8_schedule_passes_with_the_rule_intact`).
#[test]
fn committing_previous_terms_by_counting_is_caught() {
    let mut breaks = Breaks::default();
    breaks.raft.commit_previous_term_by_counting = true;
    for seed in 0..8 {
        let failure = match figure8::run_figure8(seed, breaks) {
            Ok(outcome) => panic!("seed {seed}: Figure 8 not caught: {outcome:?}"),
            Err(failure) => failure,
        };
        println!("caught: {failure}");
        assert!(
            [Check::LeaderCompleteness, Check::StateMachineSafety].contains(&failure.violation.check),
            "{breaks:?} was caught by {:?}, expected leader completeness or state machine safety: {failure}",
            failure.violation.check
        );
    }
}

/// (c) Applying entries before they commit applies entries that are later
/// overwritten.
#[test]
fn applying_before_commit_is_caught() {
    let mut breaks = Breaks::default();
    breaks.raft.apply_before_commit = true;
    assert_caught_by(breaks, &[Check::StateMachineSafety]);
}

/// (d) §5.2: a node that forgets its vote across a crash votes twice in a
/// term, and two leaders are elected in it.
#[test]
fn forgetting_to_persist_the_vote_is_caught() {
    let breaks = Breaks {
        forget_vote: true,
        ..Breaks::default()
    };
    assert_caught_by(breaks, &[Check::ElectionSafety]);
}

/// (e) §6.4: reads served from a node's local map without ReadIndex are
/// stale (followers lag, deposed leaders do not know it yet).
#[test]
fn reading_without_read_index_is_caught() {
    let breaks = Breaks {
        read_without_read_index: true,
        ..Breaks::default()
    };
    assert_caught_by(breaks, &[Check::Linearizability]);
}
