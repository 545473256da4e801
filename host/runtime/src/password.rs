//! `verify-password`: bcrypt for plugins, run by the host.
//!
//! JavaScript and Python plugins have no fast bcrypt of their own, and a
//! Rust one compiled to Wasm is several times slower than native. The host
//! verifies instead, but bcrypt is deliberately slow and a host function
//! cannot be interrupted by the epoch deadline the way guest code can, so:
//! the work runs on the blocking pool, the caller waits for it only until
//! its deadline (then the call traps as a timeout), hashes with a cost above
//! [`MAX_COST`] are refused outright, and a process-wide semaphore bounds how
//! many verifications run at once, including ones whose caller gave up.

use std::sync::{Arc, LazyLock};
use std::time::Instant;
use tokio::sync::Semaphore;

/// Highest bcrypt cost the host verifies. Cost 14 takes about a second
/// natively; each step doubles it, so a hostile hash with cost 31 would pin
/// a core for days.
pub const MAX_COST: u32 = 14;

/// Verifications running at once, whoever waits for them.
static SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(cores))
});

/// Why a verification produced no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The call's deadline passed while waiting for or running bcrypt.
    #[error("deadline passed during verify-password")]
    Deadline,
}

/// What the host makes of a `hash` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// A bcrypt hash the host will verify.
    Bcrypt,
    /// A bcrypt hash whose cost is above [`MAX_COST`].
    TooCostly(u32),
    /// Not a bcrypt hash (plaintext, truncated, another scheme).
    NotBcrypt,
}

/// Classify `hash` without doing any bcrypt work.
pub fn hash_kind(hash: &str) -> HashKind {
    let prefixed = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    let cost = hash.get(4..6).and_then(|c| c.parse::<u32>().ok());
    match cost {
        Some(cost) if prefixed && hash.as_bytes().get(6) == Some(&b'$') && cost >= 4 => {
            if cost > MAX_COST {
                HashKind::TooCostly(cost)
            } else {
                HashKind::Bcrypt
            }
        }
        _ => HashKind::NotBcrypt,
    }
}

/// True when `password` matches the bcrypt `hash`; false for a mismatch,
/// a malformed hash or one costlier than [`MAX_COST`]. Gives up at
/// `deadline`.
pub async fn verify(
    password: String,
    hash: String,
    deadline: Instant,
) -> Result<bool, PasswordError> {
    if hash_kind(&hash) != HashKind::Bcrypt {
        return Ok(false);
    }
    let work = async move {
        let permit = SLOTS.clone().acquire_owned().await.ok()?;
        // The permit moves into the blocking task: a verification the
        // caller stopped waiting for still holds its slot until it ends.
        tokio::task::spawn_blocking(move || {
            let matches = bcrypt::verify(&password, &hash).unwrap_or(false);
            drop(permit);
            matches
        })
        .await
        .ok()
    };
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(answer) => Ok(answer.unwrap_or(false)),
        Err(_) => Err(PasswordError::Deadline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hash_kinds() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(hash_kind(&hash), HashKind::Bcrypt);
        assert_eq!(hash_kind("pw"), HashKind::NotBcrypt);
        assert_eq!(hash_kind("$2b$xx$abc"), HashKind::NotBcrypt);
        assert_eq!(hash_kind("$2b$03$abc"), HashKind::NotBcrypt);
        assert_eq!(hash_kind("$2b$15$abc"), HashKind::TooCostly(15));
        assert_eq!(hash_kind("$2b$31$abc"), HashKind::TooCostly(31));
        assert_eq!(hash_kind("$5$rounds"), HashKind::NotBcrypt);
    }

    #[tokio::test]
    async fn verifies_and_refuses() {
        let far = Instant::now() + Duration::from_secs(30);
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        assert_eq!(verify("s3cret".into(), hash.clone(), far).await, Ok(true));
        assert_eq!(verify("wrong".into(), hash.clone(), far).await, Ok(false));
        assert_eq!(
            verify("s3cret".into(), "s3cret".into(), far).await,
            Ok(false)
        );
        let costly = hash.replacen("$04$", "$31$", 1);
        assert_eq!(verify("s3cret".into(), costly, far).await, Ok(false));
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline() {
        // Cost 12 takes far longer than 1 ms on any machine. Giving up is
        // judged against what one hash costs on this machine right now, not
        // against a fixed figure a loaded machine could break: a verify that
        // waited for the hash would take about as long as making it did.
        let hashing = Instant::now();
        let hash = bcrypt::hash("pw", 12).unwrap();
        let one_hash = hashing.elapsed();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(1);
        assert_eq!(
            verify("pw".into(), hash, deadline).await,
            Err(PasswordError::Deadline)
        );
        let took = started.elapsed();
        eprintln!("gave up after {took:?}; one cost-12 hash took {one_hash:?}");
        assert!(
            took < one_hash / 2,
            "gave up after {took:?}, one hash takes {one_hash:?}: it waited for the hash"
        );
    }
}
