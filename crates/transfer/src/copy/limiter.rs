//! Adaptive concurrency: additive increase, multiplicative decrease, per registry; and the
//! order in which waiting blobs are admitted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A semaphore whose size adapts: halved when a registry pushes back (429/503), grown by
/// one per `window` successes back up to the maximum. Slots may also carry a weight (the
/// bytes of the blob they admit) against a byte budget: a slot is granted while the weights
/// in flight fit the budget, and always when nothing is in flight or it weighs nothing.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    budget: u64,
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    bytes: u64,
    successes: usize,
}

/// A held slot; released on drop. It owns a handle on its limiter, so it can travel with
/// the work it admits (an upload body releases its slot when its last byte is sent).
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<Limiter>,
    bytes: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut s = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
            s.in_flight -= 1;
            s.bytes -= self.bytes;
        }
        self.limiter.notify.notify_waiters();
    }
}

impl Limiter {
    /// A limiter allowing `max` (at least 1) concurrent slots, with no byte budget.
    #[cfg(test)]
    pub fn new(max: usize) -> Self {
        Self::with_budget(max, u64::MAX)
    }

    /// A limiter allowing `max` (at least 1) concurrent slots whose weights add up to at
    /// most `budget` (a single slot may exceed it alone).
    pub fn with_budget(max: usize, budget: u64) -> Self {
        let max = max.max(1);
        Self {
            max,
            budget,
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
                bytes: 0,
                successes: 0,
            }),
            notify: Notify::new(),
        }
    }

    /// Waits for a slot of weight zero.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        self.acquire_weighted(0).await
    }

    /// Waits for a slot weighing `bytes` against the byte budget.
    pub async fn acquire_weighted(self: &Arc<Self>, bytes: u64) -> Slot {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let fits =
                    bytes == 0 || s.in_flight == 0 || s.bytes.saturating_add(bytes) <= self.budget;
                if s.in_flight < s.limit && fits {
                    s.in_flight += 1;
                    s.bytes += bytes;
                    return Slot {
                        limiter: self.clone(),
                        bytes,
                    };
                }
            }
            notified.await;
        }
    }

    /// The registry pushed back: halve the limit.
    pub fn back_off(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.limit = (s.limit / 2).max(1);
        s.successes = 0;
    }

    /// A success: after as many successes as the current limit, allow one more slot.
    pub fn succeeded(&self) {
        let grew = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.successes += 1;
            if s.successes >= s.limit && s.limit < self.max {
                s.limit += 1;
                s.successes = 0;
                true
            } else {
                false
            }
        };
        if grew {
            self.notify.notify_waiters();
        }
    }

    /// The current limit.
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).limit
    }
}

/// Admission in a fixed order: a job waits for its turn until every job numbered below its
/// `gate` has taken its own or given it up. Jobs get ready out of order (their upload
/// sessions open in whatever order the target answers); without turns the first ready would
/// take the free slot, and the small blobs, which fit a byte budget more easily, would
/// overtake the big ones they were sorted behind. Jobs that share a gate (blobs of about the
/// same size) go in whatever order they get ready.
#[derive(Debug, Default)]
pub struct Turns {
    state: Mutex<TurnState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct TurnState {
    /// Every job below `next` is done with its turn.
    next: usize,
    /// Jobs at or above `next` done with their turn.
    done: BTreeSet<usize>,
    /// Turns handed out by [`Turns::by_size`].
    issued: usize,
    /// The size class (bit length) of the last turn handed out, and its gate.
    class: Option<(u32, usize)>,
}

/// Job `index`'s place in a [`Turns`]; gives the turn up when dropped.
#[derive(Debug)]
pub struct Turn {
    turns: Arc<Turns>,
    index: usize,
    gate: usize,
    taken: bool,
}

impl Turns {
    /// The place of job `index` (each index once, from 0 up without gaps), which goes once
    /// the jobs below `gate` (at most `index`) have gone.
    fn turn(self: &Arc<Self>, index: usize, gate: usize) -> Turn {
        Turn {
            turns: self.clone(),
            index,
            gate: gate.min(index),
            taken: false,
        }
    }

    /// The next place, for a blob of `size` bytes (call it for blobs sorted largest first):
    /// blobs within a factor of two of each other in size (the same bit length) share a gate.
    pub fn by_size(self: &Arc<Self>, size: u64) -> Turn {
        let (index, gate) = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let bits = u64::BITS - size.leading_zeros();
            let index = s.issued;
            let gate = match s.class {
                Some((c, gate)) if c == bits => gate,
                _ => {
                    s.class = Some((bits, index));
                    index
                }
            };
            s.issued += 1;
            (index, gate)
        };
        self.turn(index, gate)
    }
}

/// A blob's admission to its target: the target's limiter and the blob's turn there.
#[derive(Debug)]
pub struct Admission {
    /// The target's limiter.
    pub limiter: Arc<Limiter>,
    /// The blob's turn.
    pub turn: Turn,
}

impl Admission {
    /// Waits for the turn, then for a slot weighing `bytes`; the turn passes on with the slot.
    pub async fn slot(&mut self, bytes: u64) -> Slot {
        self.turn.wait().await;
        let slot = self.limiter.acquire_weighted(bytes).await;
        self.turn.done();
        slot
    }
}

impl Turn {
    /// Waits until every job below this one's gate is done with its turn (at once when this
    /// turn is already over: a retry goes without waiting).
    pub async fn wait(&self) {
        if self.taken {
            return;
        }
        loop {
            let notified = self.turns.notify.notified();
            if self
                .turns
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .next
                >= self.gate
            {
                return;
            }
            notified.await;
        }
    }

    /// This job is done with its turn: the next may go.
    pub fn done(&mut self) {
        if std::mem::replace(&mut self.taken, true) {
            return;
        }
        {
            let mut s = self.turns.state.lock().unwrap_or_else(|e| e.into_inner());
            s.done.insert(self.index);
            while s.done.first() == Some(&s.next) {
                s.done.pop_first();
                s.next += 1;
            }
        }
        self.turns.notify.notify_waiters();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_keep_their_order() {
        let turns = Arc::new(Turns::default());
        let mut places: Vec<Turn> = (0..4).map(|i| turns.turn(i, i)).collect();
        let last = places.pop().expect("four");
        let third = places.pop().expect("three");
        // Job 3 is ready first, but waits for 0, 1 and 2.
        let waiter = tokio::spawn(async move {
            last.wait().await;
            last.index
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "job 3 went before job 0");
        // Done out of order: 2 gives its turn up first (say, its blob was mounted)...
        drop(third);
        places[1].done();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "job 3 went before job 0");
        // ... and 3 goes once 0 is done too.
        places[0].done();
        assert_eq!(waiter.await.unwrap(), 3);
        // A turn already over does not wait again (a retry).
        places[0].wait().await;
    }

    #[tokio::test]
    async fn jobs_sharing_a_gate_go_in_any_order() {
        let turns = Arc::new(Turns::default());
        let first = turns.turn(0, 0);
        let (second, third) = (turns.turn(1, 1), turns.turn(2, 1));
        // 2 shares 1's gate: it waits for 0 only, not for 1.
        let waiter = tokio::spawn(async move {
            third.wait().await;
            third.index
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "job 2 went before job 0");
        drop(first);
        assert_eq!(waiter.await.unwrap(), 2);
        second.wait().await;
    }

    #[test]
    fn sizes_of_one_bit_length_share_a_gate() {
        let turns = Arc::new(Turns::default());
        let gates: Vec<(usize, usize)> = [64 << 20, 40 << 20, 33 << 20, 8 << 20, 5 << 20, 100, 0]
            .into_iter()
            .map(|size| {
                let t = turns.by_size(size);
                (t.index, t.gate)
            })
            .collect();
        assert_eq!(
            gates,
            vec![(0, 0), (1, 1), (2, 1), (3, 3), (4, 4), (5, 5), (6, 6)]
        );
    }

    #[tokio::test]
    async fn aimd() {
        let l = Arc::new(Limiter::new(8));
        assert_eq!(l.limit(), 8);
        l.back_off();
        l.back_off();
        assert_eq!(l.limit(), 2);
        for _ in 0..2 {
            l.succeeded();
        }
        assert_eq!(l.limit(), 3);
        for _ in 0..100 {
            l.succeeded();
        }
        assert_eq!(l.limit(), 8);
        for _ in 0..10 {
            l.back_off();
        }
        assert_eq!(l.limit(), 1);
    }

    #[tokio::test]
    async fn weights_share_a_budget() {
        let l = Arc::new(Limiter::with_budget(8, 100));
        // Alone, a slot may weigh more than the budget.
        let big = l.acquire_weighted(150).await;
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire_weighted(10).await.bytes });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "over budget while the big one streams"
        );
        drop(big);
        assert_eq!(waiter.await.unwrap(), 10);
        // Within the budget, several go at once, and weightless slots are never held back.
        let a = l.acquire_weighted(60).await;
        let b = l.acquire_weighted(40).await;
        let _c = l.acquire().await;
        let l3 = l.clone();
        let waiter = tokio::spawn(async move { l3.acquire_weighted(1).await.bytes });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop((a, b));
        assert_eq!(waiter.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn slots_are_bounded() {
        let l = std::sync::Arc::new(Limiter::new(2));
        let a = l.acquire().await;
        let _b = l.acquire().await;
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            let _c = l2.acquire().await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.unwrap();
    }
}
