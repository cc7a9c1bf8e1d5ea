//! Adaptive concurrency: additive increase, multiplicative decrease, per registry.

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
    pub fn limit(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
