//! Frees large values off the UI thread. A GPU source's round replaces a list of tens of
//! thousands of GPU records; the frame that drops the last reference to the old list would
//! spend milliseconds freeing it. `later` hands such a value to one background thread, which
//! drops it; if that thread cannot be started, the value is dropped where it is.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

type Garbage = Box<dyn Send>;

fn sender() -> Option<&'static Mutex<Sender<Garbage>>> {
    static SENDER: OnceLock<Option<Mutex<Sender<Garbage>>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (tx, rx) = channel::<Garbage>();
            std::thread::Builder::new()
                .name("fleetdeck-reclaim".into())
                .spawn(move || {
                    for garbage in rx {
                        drop(garbage);
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
}

/// Drops `value` on the background thread.
pub fn later<T: Send + 'static>(value: T) {
    let garbage: Garbage = Box::new(value);
    if let Some(tx) = sender()
        && let Ok(tx) = tx.lock()
    {
        // A closed channel hands the value back: it is dropped here.
        let _ = tx.send(garbage);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_value_handed_over_is_dropped_on_another_thread() {
        let dropped = Arc::new(AtomicBool::new(false));
        super::later(Flag(dropped.clone()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(dropped.load(Ordering::SeqCst));
    }
}
