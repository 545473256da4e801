//! Logins in a loop while something changes underneath (a swap, a host
//! stopping): counts what succeeded and what failed, and when each success
//! completed.
//!
//! The times matter: "no login lost during a swap" is only shown if logins
//! kept succeeding while the swap happened. A load that stalled for the
//! whole swap and resumed afterwards would also have lost nothing, so the
//! tests check each swap window with [`LoginLoad::ensure_logins_during`].

use crate::{WAIT, login};
use anyhow::{Result, bail};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clients logging in in a loop until stopped (alice and bob alternating,
/// client `i` on `urls[i % urls.len()]`); counts successes and failures.
pub struct LoginLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<std::sync::atomic::AtomicU64>,
    failed: Arc<std::sync::atomic::AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    /// When each successful login completed (its round trip returned).
    ok_at: Arc<Mutex<Vec<Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LoginLoad {
    pub fn start(urls: &[String], clients: usize) -> LoginLoad {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let ok_at = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|i| {
                let url = urls[i % urls.len()].clone();
                let (stop, ok, failed, errors, ok_at) = (
                    stop.clone(),
                    ok.clone(),
                    failed.clone(),
                    errors.clone(),
                    ok_at.clone(),
                );
                let user = if i % 2 == 0 { "alice" } else { "bob" };
                tokio::spawn(async move {
                    // Bounded: stopped by the test, and never longer than two minutes.
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let result = async {
                            let client = login(&url, user, user).await?;
                            // A round trip proves the server admitted us.
                            client.flush().await?;
                            anyhow::Ok(())
                        };
                        match result.await {
                            Ok(()) => {
                                ok_at.lock().unwrap().push(Instant::now());
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let mut errors = errors.lock().unwrap();
                                if errors.len() < 20 {
                                    errors.push(format!("{user}@{url}: {e}"));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        LoginLoad {
            stop,
            ok,
            failed,
            errors,
            ok_at,
            tasks,
        }
    }

    /// Successful logins so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Successful logins that completed between `from` and `to`.
    pub fn logins_between(&self, from: Instant, to: Instant) -> usize {
        let ok_at = self.ok_at.lock().unwrap();
        ok_at.iter().filter(|t| **t >= from && **t <= to).count()
    }

    /// Fail unless at least one login completed between `from` (the action:
    /// a rename, a push, a reload request) and `to` (the swap observed): the
    /// load was served during the swap, not only before and after it.
    pub fn ensure_logins_during(&self, from: Instant, to: Instant, what: &str) -> Result<usize> {
        let n = self.logins_between(from, to);
        anyhow::ensure!(
            n > 0,
            "{what}: no login completed in the {:?} between the action and the swap being seen; \
             the load stalled instead of being served",
            to - from
        );
        Ok(n)
    }

    /// Stop; (successful, failed, first errors).
    pub async fn finish(self) -> (u64, u64, Vec<String>) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let errors = self.errors.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }

    /// Wait (up to `WAIT`) until `n` more logins succeeded than now.
    pub async fn wait_for_logins(&self, n: u64) -> Result<()> {
        let target = self.ok() + n;
        let deadline = Instant::now() + WAIT;
        while self.ok() < target {
            if Instant::now() > deadline {
                bail!(
                    "the load made no progress: {} of {target} logins",
                    self.ok()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}
