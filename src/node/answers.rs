//! How the driver answers the writes it proposed: one shared place per
//! batch instead of a channel per write.
//!
//! A connection's pipelined writes (and a follower's forwarded frame) reach
//! the driver as one batch. Each write's fate is known separately (applied,
//! overwritten, refused), so the core keeps one [`WriteReply`] per write;
//! but the proposer waits for all of them, so they share one
//! [`BatchAnswers`]: one allocation and one wake-up for the batch rather than
//! a oneshot channel (an allocation, and a wake-up when it is answered) per
//! write.
//!
//! Invariants:
//! - every place is closed exactly once: answered by [`WriteReply::send`],
//!   or left unanswered when its `WriteReply` is dropped (the driver
//!   stopped, or dropped the write without a word), which the waiter reads
//!   as "the node stopped";
//! - the waiter wakes when the last place closes, and never reads a place
//!   as unanswered once it was answered: answers are read under the lock
//!   that writes them.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{LocalWrite, Proposed, RequestError};

/// Where one proposed write's fate goes.
pub(crate) struct WriteReply {
    /// `None` once answered.
    to: Option<To>,
}

enum To {
    /// A write on its own, whose proposer waits on a channel (a membership
    /// change).
    One(oneshot::Sender<LocalWrite>),
    /// A write's place (the index) in its batch's answers.
    InBatch(Arc<BatchAnswers>, usize),
}

impl WriteReply {
    /// The reply of a write on its own, heard on `tx`'s receiver (which
    /// errs if the reply is dropped unanswered).
    pub(crate) fn one(tx: oneshot::Sender<LocalWrite>) -> WriteReply {
        WriteReply {
            to: Some(To::One(tx)),
        }
    }

    /// Hands `answer` to whoever waits for it (gone waiters are fine).
    pub(crate) fn send(mut self, answer: LocalWrite) {
        match self.to.take() {
            Some(To::One(tx)) => {
                // A proposer that gave up no longer listens.
                let _ = tx.send(answer);
            }
            Some(To::InBatch(answers, at)) => answers.close(at, Place::Answered(answer)),
            None => {}
        }
    }
}

impl Drop for WriteReply {
    fn drop(&mut self) {
        if let Some(To::InBatch(answers, at)) = self.to.take() {
            answers.close(at, Place::Dropped);
        }
    }
}

/// One write's place in a batch's answers.
enum Place {
    /// Not answered yet.
    Open,
    /// The driver's answer.
    Answered(LocalWrite),
    /// Its reply was dropped unanswered.
    Dropped,
}

/// The answers of one batch of writes, filled by the driver.
pub(crate) struct BatchAnswers {
    state: Mutex<State>,
}

struct State {
    places: Vec<Place>,
    /// Places not closed yet.
    open: usize,
    /// The waiter, when it waits.
    waker: Option<Waker>,
}

impl BatchAnswers {
    /// The answers of `n` writes, and a reply for each, in order.
    pub(crate) fn new(n: usize) -> (Arc<BatchAnswers>, Vec<WriteReply>) {
        let answers = Arc::new(BatchAnswers {
            state: Mutex::new(State {
                places: (0..n).map(|_| Place::Open).collect(),
                open: n,
                waker: None,
            }),
        });
        let replies = (0..n)
            .map(|at| WriteReply {
                to: Some(To::InBatch(Arc::clone(&answers), at)),
            })
            .collect();
        (answers, replies)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock still holds
        // consistent places.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, at: usize, place: Place) {
        let waker = {
            let mut state = self.lock();
            let Some(slot) = state.places.get_mut(at) else {
                return;
            };
            if !matches!(slot, Place::Open) {
                return;
            }
            *slot = place;
            state.open -= 1;
            if state.open > 0 {
                return;
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Waits until every place is closed.
    async fn all_closed(&self) {
        poll_fn(|cx| {
            let mut state = self.lock();
            if state.open == 0 {
                Poll::Ready(())
            } else {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// The fate of a batch handed to the driver, waited for until `deadline`
/// (one timer for the whole batch: its writes commit together). Answers
/// are read in order: a `NotLeader` answers the batch (a node that does not
/// lead refuses all of a batch or none); past the deadline the answers in
/// by then count, an unanswered write may still be applied, and a dropped
/// one says the node stopped.
pub(crate) async fn batch_answers(answers: &BatchAnswers, deadline: Instant) -> Proposed {
    let in_time = tokio::time::timeout_at(deadline, answers.all_closed())
        .await
        .is_ok();
    let places = std::mem::take(&mut answers.lock().places);
    let mut results = Vec::with_capacity(places.len());
    for place in places {
        results.push(match place {
            Place::Answered(LocalWrite::NotLeader(leader)) if in_time => {
                return Proposed::NotLeader(leader)
            }
            Place::Answered(LocalWrite::Done(result)) => result,
            Place::Dropped => Err(RequestError::OutcomeUnknown(
                "the node stopped before the write was applied".to_string(),
            )),
            Place::Open | Place::Answered(LocalWrite::NotLeader(_)) => {
                Err(RequestError::OutcomeUnknown(
                    "timed out waiting for the write to commit; it may still be applied"
                        .to_string(),
                ))
            }
        });
    }
    Proposed::Done(results)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::kv;
    use crate::raft::NodeId;

    fn unknown(result: &Result<kv::Output, RequestError>, text: &str) -> bool {
        matches!(result, Err(RequestError::OutcomeUnknown(m)) if m.contains(text))
    }

    /// One timer waits for a whole batch: the answers come back in order
    /// whatever order they were given in; past the deadline the ones
    /// answered by then count, an unanswered one may still be applied and a
    /// dropped one says the node stopped; `NotLeader` answers the batch.
    #[tokio::test(start_paused = true)]
    async fn a_batch_keeps_its_order_and_what_was_answered_by_its_deadline() {
        let done = |output| LocalWrite::Done(Ok(output));
        let deadline = Instant::now() + Duration::from_secs(5);
        let (answers, replies) = BatchAnswers::new(4);
        let mut replies = replies.into_iter();
        let mut next = || replies.next().expect("four replies");
        let (first, second, third, fourth) = (next(), next(), next(), next());
        third.send(done(kv::Output::Integer(3)));
        first.send(done(kv::Output::Ok));
        drop(fourth);
        let before = Instant::now();
        let Proposed::Done(results) = batch_answers(&answers, deadline).await else {
            panic!("answered NotLeader");
        };
        assert_eq!(Instant::now() - before, Duration::from_secs(5));
        assert_eq!(results.len(), 4);
        assert_eq!(results[0], Ok(kv::Output::Ok));
        assert!(unknown(&results[1], "may still be applied"), "{results:?}");
        assert_eq!(results[2], Ok(kv::Output::Integer(3)));
        assert!(unknown(&results[3], "node stopped"), "{results:?}");
        // An answer after the waiter left goes nowhere, and harms nothing.
        second.send(done(kv::Output::Ok));

        // All answered in time, last first: no wait, every result in order.
        let (answers, replies) = BatchAnswers::new(3);
        for (i, reply) in replies.into_iter().enumerate().rev() {
            reply.send(done(kv::Output::Integer(i as i64)));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let before = Instant::now();
        let Proposed::Done(results) = batch_answers(&answers, deadline).await else {
            panic!("answered NotLeader");
        };
        assert_eq!(Instant::now(), before);
        assert_eq!(
            results,
            (0..3)
                .map(|i| Ok(kv::Output::Integer(i)))
                .collect::<Vec<_>>()
        );

        let (answers, replies) = BatchAnswers::new(2);
        for reply in replies {
            reply.send(LocalWrite::NotLeader(Some(NodeId(2))));
        }
        assert!(matches!(
            batch_answers(&answers, deadline).await,
            Proposed::NotLeader(Some(NodeId(2)))
        ));
    }

    /// The waiter wakes when the last answer arrives from another thread,
    /// not before, and sees every answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_waiter_wakes_when_the_last_place_closes() {
        for _ in 0..200 {
            let (answers, replies) = BatchAnswers::new(16);
            let answering = std::thread::spawn(move || {
                for (i, reply) in replies.into_iter().enumerate() {
                    if i % 5 == 4 {
                        drop(reply);
                    } else {
                        reply.send(LocalWrite::Done(Ok(kv::Output::Integer(i as i64))));
                    }
                }
            });
            let deadline = Instant::now() + Duration::from_secs(60);
            let Proposed::Done(results) = batch_answers(&answers, deadline).await else {
                panic!("answered NotLeader");
            };
            answering.join().expect("the answering thread");
            for (i, result) in results.iter().enumerate() {
                if i % 5 == 4 {
                    assert!(unknown(result, "node stopped"), "{i}: {result:?}");
                } else {
                    assert_eq!(*result, Ok(kv::Output::Integer(i as i64)));
                }
            }
        }
    }
}
