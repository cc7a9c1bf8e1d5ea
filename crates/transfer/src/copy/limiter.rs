//! Adaptive concurrency: additive increase, multiplicative decrease, per registry.

use std::sync::Mutex;

use tokio::sync::Notify;

/// A semaphore whose size adapts: halved when a registry pushes back (429/503), grown by
/// one per `window` successes back up to the maximum.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    successes: usize,
}

/// A held slot; released on drop.
#[derive(Debug)]
pub struct Slot<'a> {
    limiter: &'a Limiter,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        {
            let mut s = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
            s.in_flight -= 1;
        }
        self.limiter.notify.notify_waiters();
    }
}

impl Limiter {
    /// A limiter allowing `max` (at least 1) concurrent slots.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
                successes: 0,
            }),
            notify: Notify::new(),
        }
    }

    /// Waits for a slot.
    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return Slot { limiter: self };
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
        let l = Limiter::new(8);
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
