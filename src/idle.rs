//! Idle threads, woken newest first (the visit workers waiting in the peer queue, the
//! incoming handlers in [`crate::lifo_pool`]). Each waiting thread parks on a condition
//! variable of its own, pushed on a stack under its owner's lock; a wake-up pops the
//! thread that went idle last. A shared condition variable wakes the one waiting longest instead,
//! so that at a low rate of visits the work goes round every one of the 2,048 workers
//! in turn, and each worker that works once keeps its stack pages and allocator caches:
//! the soak's RSS grew for an hour as more of them were used (671 to 760 stacks
//! touched between minutes 33 and 57). Newest first, the workers a run uses are about
//! as many as were ever busy at once.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, MutexGuard};

thread_local! {
    /// This thread's own condition variable, for parking in an [`Idle`] stack.
    static OWN: Arc<Condvar> = Arc::new(Condvar::new());
}

/// The workers waiting for work, the one that went idle last on top.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    parked: Vec<Arc<Condvar>>,
}

impl Idle {
    /// Wakes the worker that went idle last, if one waits.
    pub(crate) fn wake_one(&mut self) {
        if let Some(own) = self.parked.pop() {
            own.notify_one();
        }
    }

    /// Wakes every waiting worker.
    pub(crate) fn wake_all(&mut self) {
        for own in self.parked.drain(..) {
            own.notify_one();
        }
    }

    /// Workers waiting now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.parked.len()
    }
}

/// Parks the calling thread on top of the [`Idle`] stack that `idle` finds in the
/// locked state, until a wake-up or `until`; the lock is released meanwhile and held
/// again on return.
pub(crate) fn park<T>(
    g: &mut MutexGuard<'_, T>,
    idle: impl Fn(&mut T) -> &mut Idle,
    until: Option<Instant>,
) {
    let own = OWN.with(Arc::clone);
    idle(g).parked.push(Arc::clone(&own));
    match until {
        Some(at) => {
            own.wait_until(g, at);
        }
        None => own.wait(g),
    }
    // Back by a timeout (or spuriously): leave the stack. A wake-up popped it already.
    let parked = &mut idle(g).parked;
    if let Some(i) = parked.iter().rposition(|c| Arc::ptr_eq(c, &own)) {
        parked.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::time::Duration;

    #[test]
    fn the_worker_that_went_idle_last_is_woken_first() {
        struct State {
            idle: Idle,
            woken: Vec<u32>,
        }
        let state = Arc::new(Mutex::new(State {
            idle: Idle::default(),
            woken: Vec::new(),
        }));
        let mut threads = Vec::new();
        for n in 0..4u32 {
            let shared = Arc::clone(&state);
            threads.push(std::thread::spawn(move || {
                let mut g = shared.lock();
                park(&mut g, |s| &mut s.idle, None);
                g.woken.push(n);
            }));
            // Parked in order 0, 1, 2, 3.
            while state.lock().idle.len() < n as usize + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for woken in 1..=4 {
            state.lock().idle.wake_one();
            while state.lock().woken.len() < woken {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(state.lock().woken, vec![3, 2, 1, 0]);
    }

    #[test]
    fn a_timed_out_worker_leaves_the_stack() {
        let m = Mutex::new(Idle::default());
        let mut g = m.lock();
        park(
            &mut g,
            |i| i,
            Some(Instant::now() + Duration::from_millis(20)),
        );
        assert_eq!(g.len(), 0);
        g.wake_one(); // nobody to wake: nothing happens
    }
}
