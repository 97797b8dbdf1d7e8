//! The run pool: runs execute on a fixed number of worker threads of their own, fed by a
//! bounded queue, and a run that finds the queue full is refused at once. Runs block (host
//! calls, drains, approvals); on tokio's blocking pool a flood of them took every blocking
//! thread the HTTP API and the store needed, so the daemon stopped answering while it still
//! looked healthy. Imports nothing from the crate.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Why a job was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRefusal {
    /// Every worker is busy and `queued` jobs already wait.
    Full { workers: usize, queued: usize },
    /// The workers are gone (the process is stopping).
    Closed,
}

impl std::fmt::Display for PoolRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full { workers, queued } => write!(
                f,
                "the run queue is full: {workers} run(s) in progress and {queued} waiting ([runbooks] max_concurrent_runs, max_queued_runs)"
            ),
            Self::Closed => write!(f, "the run workers have stopped"),
        }
    }
}

/// A fixed set of worker threads and a bounded queue. Dropping the pool lets the workers end
/// once the queue is empty.
pub struct RunPool {
    tx: SyncSender<Job>,
    workers: usize,
    queued: usize,
}

impl RunPool {
    /// `workers` threads (at least one) and room for `queued` jobs waiting for one of them.
    pub fn new(name: &str, workers: usize, queued: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        // A rendezvous channel (0) hands a job over only to a worker waiting for one.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queued);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self {
            tx,
            workers,
            queued,
        })
    }

    /// Queues `job` for the next free worker, or refuses it without waiting.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), PoolRefusal> {
        match self.tx.try_send(Box::new(job)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(PoolRefusal::Full {
                workers: self.workers,
                queued: self.queued,
            }),
            Err(TrySendError::Disconnected(_)) => Err(PoolRefusal::Closed),
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        // A run that panics must not take its worker with it.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a runbook run panicked; its worker goes on");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_pool_refuses_at_once_and_runs_the_rest_later() {
        let pool = RunPool::new("t", 2, 3).expect("pool");
        let (release_tx, release_rx) = channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let done = Arc::new(AtomicUsize::new(0));
        let mut refused = 0;
        for _ in 0..10 {
            let (release, done) = (release_rx.clone(), done.clone());
            let job = move || {
                let _ = release.lock().map(|r| r.recv());
                done.fetch_add(1, Ordering::SeqCst);
            };
            // Give the workers a moment to take the first two jobs off the queue.
            std::thread::sleep(Duration::from_millis(20));
            match pool.submit(job) {
                Ok(()) => {}
                Err(PoolRefusal::Full { workers, queued }) => {
                    assert_eq!((workers, queued), (2, 3));
                    refused += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(refused, 5, "two running, three waiting, five refused");
        for _ in 0..5 {
            release_tx.send(()).unwrap();
        }
        let started = std::time::Instant::now();
        while done.load(Ordering::SeqCst) < 5 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(done.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_panicking_job_does_not_take_its_worker() {
        let pool = RunPool::new("t", 1, 4).expect("pool");
        pool.submit(|| panic!("boom")).expect("queued");
        let (tx, rx) = channel();
        pool.submit(move || tx.send(42).unwrap()).expect("queued");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(42));
    }
}
