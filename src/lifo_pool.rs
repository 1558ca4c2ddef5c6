//! A fixed pool of threads that hands each job to the thread that went idle last.
//!
//! The incoming handlers (2,048 with the defaults) wait for connections that arrive a
//! few a second. A pool that wakes the thread waiting longest (as a shared queue does)
//! sends the work round all of them, and every thread that handles one connection keeps
//! the stack pages it touched: the hour-long churning soak touched ~130 more handler
//! stacks every eight minutes. Woken newest first, the handlers in use are about as
//! many as were ever busy at once (the visit workers wait the same way in the peer
//! queue, [`crate::idle`]).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::idle::{Idle, park};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    idle: Idle,
    /// Jobs running now.
    active: usize,
    /// The pool was dropped: threads end once the jobs queued are done.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the last job running ends and none waits.
    done: Condvar,
}

/// A fixed set of threads running the jobs given to [`LifoPool::execute`].
pub(crate) struct LifoPool {
    shared: Arc<Shared>,
}

impl LifoPool {
    /// Starts `threads` threads named `name` with stacks of `stack_bytes`; fails when a
    /// thread cannot be spawned (those started end).
    pub(crate) fn new(threads: usize, name: &str, stack_bytes: usize) -> std::io::Result<Self> {
        let pool = Self {
            shared: Arc::new(Shared::default()),
        };
        for _ in 0..threads {
            let shared = Arc::clone(&pool.shared);
            std::thread::Builder::new()
                .name(name.into())
                .stack_size(stack_bytes)
                .spawn(move || run(&shared))?;
        }
        Ok(pool)
    }

    /// Runs `job` on the thread that went idle last (later, when all are busy).
    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) {
        let mut g = self.shared.state.lock();
        g.jobs.push_back(Box::new(job));
        g.idle.wake_one();
    }

    /// Waits until no job is queued or running.
    pub(crate) fn join(&self) {
        let mut g = self.shared.state.lock();
        while !(g.jobs.is_empty() && g.active == 0) {
            self.shared.done.wait(&mut g);
        }
    }

    /// Threads waiting for a job now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.shared.state.lock().idle.len()
    }
}

impl Drop for LifoPool {
    fn drop(&mut self) {
        let mut g = self.shared.state.lock();
        g.closed = true;
        g.idle.wake_all();
    }
}

fn run(shared: &Shared) {
    let mut g = shared.state.lock();
    loop {
        if let Some(job) = g.jobs.pop_front() {
            g.active += 1;
            drop(g);
            // A job that panics (a bug; peers cannot cause one) must not take the
            // thread with it, nor leave `active` counted for ever.
            if catch_unwind(AssertUnwindSafe(job)).is_err() {
                log::error!("a pool job panicked; the thread goes on");
            }
            g = shared.state.lock();
            g.active -= 1;
            if g.active == 0 && g.jobs.is_empty() {
                shared.done.notify_all();
            }
            continue;
        }
        if g.closed {
            return;
        }
        park(&mut g, |s| &mut s.idle, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    /// Waits until every job is done and all `threads` wait again; fails (rather than
    /// hangs) when a thread is missing after ten seconds.
    fn settle(pool: &LifoPool, threads: usize) {
        pool.join();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.idle() < threads {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {threads} threads wait",
                pool.idle()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn jobs_one_at_a_time_all_go_to_one_thread() {
        let pool = LifoPool::new(8, "test-pool", 64 * 1024).unwrap();
        settle(&pool, 8);
        let used = Arc::new(Mutex::new(HashSet::new()));
        for _ in 0..40 {
            let used = Arc::clone(&used);
            pool.execute(move || {
                used.lock().insert(std::thread::current().id());
            });
            settle(&pool, 8);
        }
        // Woken longest-waiting first, the 40 jobs would have gone round all 8.
        assert_eq!(used.lock().len(), 1);
    }

    #[test]
    fn every_job_runs_and_join_waits_for_them_even_when_one_panics() {
        let pool = LifoPool::new(4, "test-pool", 64 * 1024).unwrap();
        let ran = Arc::new(Mutex::new(0));
        pool.execute(|| panic!("a bug in a job"));
        for _ in 0..100 {
            let ran = Arc::clone(&ran);
            pool.execute(move || {
                std::thread::sleep(Duration::from_micros(200));
                *ran.lock() += 1;
            });
        }
        pool.join();
        assert_eq!(*ran.lock(), 100);
        // All four threads are still there after the panic.
        settle(&pool, 4);
    }
}
