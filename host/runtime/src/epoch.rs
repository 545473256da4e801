//! The thread that advances the engine's epoch, which is what stops a
//! plugin at its deadline and makes a slow call yield to other logins.
//!
//! It ticks only while calls run (and for [`LINGER`] after the last one),
//! then parks: an idle host costs no wake-ups, so a fleet of hosts that
//! mostly wait does not pay a fixed CPU tax per host. Under load it never
//! parks, so a call costs two atomic increments and a decrement, not a
//! system call to wake the thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::thread::Thread;
use std::time::Duration;
use wasmtime::Engine;

/// How long the ticker keeps ticking after the last call ended before it
/// parks. Long enough that a host answering a login every few hundred
/// milliseconds never parks, short enough that an idle host soon stops.
pub const LINGER: Duration = Duration::from_secs(1);

/// Advances an engine's epoch every `tick` while [`Ticking`] guards are
/// alive. Dropping the last `Arc` ends the thread.
pub struct EpochTicker {
    /// Calls running now: while above zero the ticker never parks, however
    /// long one call takes (a busy loop must still reach its deadline).
    running: AtomicUsize,
    /// Calls started so far: a call that began and ended between two ticks
    /// still counts as activity.
    started: AtomicU64,
    /// Set by the ticker just before it parks; a call that sees it wakes
    /// the thread.
    parked: AtomicBool,
    /// Epoch increments so far.
    ticks: AtomicU64,
    thread: std::sync::OnceLock<Thread>,
}

impl EpochTicker {
    /// Start the ticker thread for `engine`.
    pub fn start(engine: &Engine, tick: Duration, linger: Duration) -> std::io::Result<Arc<Self>> {
        let ticker = Arc::new(EpochTicker {
            running: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            thread: std::sync::OnceLock::new(),
        });
        let weak_ticker = Arc::downgrade(&ticker);
        let weak_engine = engine.weak();
        let idle_ticks = (linger.as_nanos() / tick.as_nanos().max(1)).max(1);
        let handle = std::thread::Builder::new()
            .name("portcullis-epoch".into())
            .spawn(move || {
                let mut seen = u64::MAX;
                let mut idle = 0u128;
                loop {
                    let (Some(ticker), Some(engine)) =
                        (weak_ticker.upgrade(), weak_engine.upgrade())
                    else {
                        return;
                    };
                    engine.increment_epoch();
                    drop(engine);
                    ticker.ticks.fetch_add(1, SeqCst);
                    let started = ticker.started.load(SeqCst);
                    if started != seen || ticker.running.load(SeqCst) > 0 {
                        seen = started;
                        idle = 0;
                    } else {
                        idle += 1;
                    }
                    if idle >= idle_ticks {
                        // Announce the park, then look again: a call that
                        // started in between either is seen here or sees
                        // `parked` and unparks us (a wake before `park`
                        // makes it return at once).
                        ticker.parked.store(true, SeqCst);
                        if ticker.running.load(SeqCst) == 0 && ticker.started.load(SeqCst) == seen {
                            drop(ticker);
                            std::thread::park();
                            let Some(ticker) = weak_ticker.upgrade() else {
                                return;
                            };
                            ticker.parked.store(false, SeqCst);
                        } else {
                            ticker.parked.store(false, SeqCst);
                        }
                        idle = 0;
                        continue;
                    }
                    drop(ticker);
                    std::thread::sleep(tick);
                }
            })?;
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    /// Mark a call as running until the guard drops: the epoch advances
    /// for as long as it lives.
    pub fn ticking(&self) -> Ticking<'_> {
        self.started.fetch_add(1, SeqCst);
        self.running.fetch_add(1, SeqCst);
        if self.parked.load(SeqCst)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
        Ticking(self)
    }

    /// Epoch increments so far.
    #[cfg(test)]
    pub fn ticks(&self) -> u64 {
        self.ticks.load(SeqCst)
    }

    /// True while the thread is parked (or about to park).
    #[cfg(test)]
    pub fn parked(&self) -> bool {
        self.parked.load(SeqCst)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        // Let a parked thread see that we are gone and end.
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// A running call, see [`EpochTicker::ticking`].
pub struct Ticking<'a>(&'a EpochTicker);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const TICK: Duration = Duration::from_millis(2);
    const LINGER: Duration = Duration::from_millis(40);

    /// Wait (bounded) until `done` holds.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_idle_ticker_parks_and_a_call_wakes_it() {
        let engine = Engine::default();
        let ticker = EpochTicker::start(&engine, TICK, LINGER).unwrap();
        wait_for("the idle ticker to park", || ticker.parked());
        let parked_at = ticker.ticks();
        std::thread::sleep(LINGER * 3);
        assert!(
            ticker.ticks() <= parked_at + 1,
            "a parked ticker still ticked: {parked_at} -> {}",
            ticker.ticks()
        );

        let call = ticker.ticking();
        let woke_at = ticker.ticks();
        wait_for("ticks while a call runs", || ticker.ticks() >= woke_at + 5);
        assert!(!ticker.parked());
        drop(call);
        wait_for("the ticker to park again", || ticker.parked());
    }

    #[test]
    fn a_long_call_keeps_the_ticker_going_past_the_linger() {
        let engine = Engine::default();
        let ticker = EpochTicker::start(&engine, TICK, LINGER).unwrap();
        let call = ticker.ticking();
        let from = ticker.ticks();
        // Far past the linger: a busy loop must still meet its deadline.
        let needed = 3 * (LINGER.as_millis() / TICK.as_millis()) as u64;
        wait_for("ticks past the linger", || ticker.ticks() >= from + needed);
        assert!(!ticker.parked(), "parked while a call was running");
        drop(call);
    }
}
