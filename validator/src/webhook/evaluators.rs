//! The threads evaluations run on, the most recently idle one first.
//!
//! Evaluations block (the engines are synchronous, and an image-signature lookup waits on a
//! registry), so they run off the async runtime. A pool that hands work to its longest-idle
//! thread spreads even a light load over every thread a burst ever started, each with its
//! own caches and allocator heap; this one hands it to the thread that finished last, so a
//! steady load stays on as few threads as it needs, and the threads a burst started go idle
//! and end after `keep_alive`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A job computes its result and returns how to deliver it: the thread lists itself as idle
/// in between, so that whoever the result wakes finds it idle already.
type Job = Box<dyn FnOnce() -> Deliver + Send>;
type Deliver = Box<dyn FnOnce() + Send>;

/// Why a job gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    #[error("the evaluation panicked: {0}")]
    Panicked(String),
    #[error("no thread could be started for the evaluation: {0}")]
    NoThread(String),
}

pub struct Evaluators {
    /// Idle threads, the most recently idle last: each one's id and the way to hand it a job.
    idle: Mutex<Vec<(usize, Sender<Job>)>>,
    keep_alive: Duration,
    next_id: AtomicUsize,
    running: AtomicUsize,
}

impl Evaluators {
    pub fn new(keep_alive: Duration) -> Arc<Evaluators> {
        Arc::new(Evaluators {
            idle: Mutex::new(Vec::new()),
            keep_alive,
            next_id: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        })
    }

    /// Threads alive, idle or busy.
    pub fn threads(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Runs `f` on the most recently idle thread, or on a new one when none is idle.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Lost> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
                payload
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            });
            Box::new(move || {
                let _ = tx.send(out);
            })
        });
        self.dispatch(job)?;
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(Lost::Panicked(message)),
            Err(_) => Err(Lost::Panicked("its thread ended".into())),
        }
    }

    fn dispatch(self: &Arc<Self>, job: Job) -> Result<(), Lost> {
        let mut job = job;
        loop {
            let worker = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some((_, worker)) = worker else { break };
            // A thread removes itself from the idle list before it ends, so this only fails
            // if it ended some other way; the job then goes to the next one.
            match worker.send(job) {
                Ok(()) => return Ok(()),
                Err(returned) => job = returned.0,
            }
        }
        self.spawn(job)
    }

    fn spawn(self: &Arc<Self>, first: Job) -> Result<(), Lost> {
        let pool = Arc::clone(self);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::AcqRel);
        let started = std::thread::Builder::new()
            .name("evaluation".into())
            .spawn(move || {
                let (tx, rx) = channel::<Job>();
                let mut job = first;
                loop {
                    let deliver = job();
                    if let Ok(mut idle) = pool.idle.lock() {
                        idle.push((id, tx.clone()));
                    }
                    deliver();
                    job = match rx.recv_timeout(pool.keep_alive) {
                        Ok(next) => next,
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(RecvTimeoutError::Timeout) => {
                            let listed = pool.idle.lock().ok().map(|mut idle| {
                                let before = idle.len();
                                idle.retain(|(other, _)| *other != id);
                                idle.len() < before
                            });
                            match listed {
                                // Still idle: no job can come any more.
                                Some(true) | None => break,
                                // Taken off the list as the wait ended: its job is on its way.
                                Some(false) => match rx.recv() {
                                    Ok(next) => next,
                                    Err(_) => break,
                                },
                            }
                        }
                    };
                }
                pool.running.fetch_sub(1, Ordering::AcqRel);
            });
        match started {
            Ok(_) => Ok(()),
            Err(e) => {
                self.running.fetch_sub(1, Ordering::AcqRel);
                Err(Lost::NoThread(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::thread::ThreadId;

    fn current() -> ThreadId {
        std::thread::current().id()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_steady_load_stays_on_the_most_recently_idle_thread() {
        let pool = Evaluators::new(Duration::from_secs(30));
        // Three at once: three threads.
        let barrier = Arc::new(Barrier::new(3));
        let at_once: Vec<_> = (0..3)
            .map(|_| {
                let (pool, barrier) = (pool.clone(), barrier.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        barrier.wait();
                        current()
                    })
                    .await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for handle in at_once {
            ids.push(handle.await.expect("joined").expect("ran"));
        }
        ids.sort_by_key(|id| format!("{id:?}"));
        ids.dedup();
        assert_eq!((ids.len(), pool.threads()), (3, 3));
        // One at a time afterwards: always the same thread, the last to have finished.
        let mut sequential = Vec::new();
        for _ in 0..20 {
            sequential.push(pool.run(current).await.expect("ran"));
        }
        sequential.dedup();
        assert_eq!(sequential.len(), 1, "{sequential:?}");
        assert_ne!(sequential[0], current(), "not on the caller's thread");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_threads_end_and_new_work_starts_one_again() {
        let pool = Evaluators::new(Duration::from_millis(50));
        let barrier = Arc::new(Barrier::new(2));
        let (a, b) = (barrier.clone(), barrier);
        let (x, y) = tokio::join!(pool.run(move || a.wait()), pool.run(move || b.wait()));
        assert!(x.is_ok() && y.is_ok());
        assert_eq!(pool.threads(), 2);
        let mut waited = Duration::ZERO;
        while pool.threads() > 0 && waited < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
        assert_eq!(pool.threads(), 0, "idle threads ended");
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_reported_and_the_pool_goes_on() {
        let pool = Evaluators::new(Duration::from_secs(30));
        let lost = pool
            .run(|| -> u32 { panic!("engine state is broken") })
            .await
            .unwrap_err();
        assert_eq!(lost, Lost::Panicked("engine state is broken".into()));
        assert!(lost.to_string().contains("panicked"), "{lost}");
        assert_eq!(pool.run(|| 1).await, Ok(1));
    }
}
