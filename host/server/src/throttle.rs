//! Failed logins are bounded per client address and per user name, so
//! password guessing (and floods of costly bcrypt checks) cannot occupy
//! the plugin pools and the bcrypt slots that every other login needs.
//! Beyond the limit a login is refused at once with a signed error,
//! without asking any plugin.
//!
//! Counting is a fixed window per key: the first failure opens a window of
//! `window`; a key with `limit` failures in its open window is refused
//! until the window ends. Both tables are bounded: an attacker who invents
//! addresses or user names fills them, and once full (after dropping every
//! expired window) new keys are not tracked, so memory stays bounded and
//! keys already tracked stay limited.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys one table tracks at most: enough for every address and user name
/// a host sees failing in a window, small enough (a few MiB) that a flood
/// of invented names cannot grow the host.
pub const MAX_TRACKED: usize = 65_536;

/// The limits `[limits]` sets; a limit of 0 turns that key off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    pub per_address: u32,
    pub per_user: u32,
    pub window: Duration,
}

impl Default for FailureLimits {
    fn default() -> Self {
        FailureLimits {
            per_address: 100,
            per_user: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// Which limit refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Address,
    User,
}

impl Limited {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Limited::Address => "address",
            Limited::User => "user",
        }
    }

    /// The reason sent to the server (and logged).
    pub fn reason(self) -> &'static str {
        match self {
            Limited::Address => "too many failed logins from this client address",
            Limited::User => "too many failed logins for this user name",
        }
    }
}

struct Window {
    opened: Instant,
    failures: u32,
}

struct Table {
    limit: u32,
    windows: Mutex<HashMap<String, Window>>,
}

impl Table {
    fn new(limit: u32) -> Table {
        Table {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn exceeded(&self, key: &str, window: Duration, now: Instant) -> bool {
        if self.limit == 0 || key.is_empty() {
            return false;
        }
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows
            .get(key)
            .is_some_and(|w| now.duration_since(w.opened) < window && w.failures >= self.limit)
    }

    fn fail(&self, key: &str, window: Duration, now: Instant) {
        if self.limit == 0 || key.is_empty() {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if !windows.contains_key(key) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.duration_since(w.opened) < window);
            if windows.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = windows.entry(key.to_owned()).or_insert(Window {
            opened: now,
            failures: 0,
        });
        if now.duration_since(entry.opened) >= window {
            *entry = Window {
                opened: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }
}

/// Failed-login counts of one host.
pub struct Throttle {
    window: Duration,
    addresses: Table,
    users: Table,
}

impl Throttle {
    pub fn new(limits: FailureLimits) -> Throttle {
        Throttle {
            window: limits.window,
            addresses: Table::new(limits.per_address),
            users: Table::new(limits.per_user),
        }
    }

    /// Whether a login from `address` as `user` is refused before any
    /// plugin is asked.
    pub fn check(&self, address: &str, user: &str) -> Option<Limited> {
        self.check_at(address, user, Instant::now())
    }

    /// Count one failed login from `address` as `user`.
    pub fn failed(&self, address: &str, user: &str) {
        self.failed_at(address, user, Instant::now());
    }

    fn check_at(&self, address: &str, user: &str, now: Instant) -> Option<Limited> {
        if self.addresses.exceeded(address, self.window, now) {
            Some(Limited::Address)
        } else if self.users.exceeded(user, self.window, now) {
            Some(Limited::User)
        } else {
            None
        }
    }

    fn failed_at(&self, address: &str, user: &str, now: Instant) {
        self.addresses.fail(address, self.window, now);
        self.users.fail(user, self.window, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn throttle(per_address: u32, per_user: u32) -> Throttle {
        Throttle::new(FailureLimits {
            per_address,
            per_user,
            window: MINUTE,
        })
    }

    #[test]
    fn a_user_guessed_at_is_refused_from_every_address_until_the_window_ends() {
        let t = throttle(100, 3);
        let now = Instant::now();
        for address in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            assert_eq!(t.check_at(address, "alice", now), None);
            t.failed_at(address, "alice", now);
        }
        assert_eq!(t.check_at("10.0.0.4", "alice", now), Some(Limited::User));
        assert_eq!(t.check_at("10.0.0.4", "bob", now), None);
        assert_eq!(t.check_at("10.0.0.4", "alice", now + MINUTE), None);
    }

    #[test]
    fn an_address_spraying_user_names_is_refused_for_every_user() {
        let t = throttle(3, 100);
        let now = Instant::now();
        for user in ["a", "b", "c"] {
            t.failed_at("10.0.0.9", user, now);
        }
        assert_eq!(t.check_at("10.0.0.9", "d", now), Some(Limited::Address));
        assert_eq!(t.check_at("10.0.0.8", "d", now), None);
    }

    #[test]
    fn a_zero_limit_and_an_empty_key_are_never_counted() {
        let t = throttle(0, 1);
        let now = Instant::now();
        for _ in 0..10 {
            t.failed_at("10.0.0.1", "", now);
        }
        assert_eq!(t.check_at("10.0.0.1", "", now), None);
    }

    #[test]
    fn invented_names_cannot_grow_the_tables_past_their_bound() {
        let t = throttle(1, 1);
        let now = Instant::now();
        for i in 0..MAX_TRACKED + 100 {
            t.failed_at("10.0.0.1", &format!("user-{i}"), now);
        }
        let users = t.users.windows.lock().unwrap();
        assert_eq!(users.len(), MAX_TRACKED);
        drop(users);
        // Keys tracked before the table filled stay limited.
        assert_eq!(t.check_at("10.0.0.2", "user-0", now), Some(Limited::User));
        // Expired windows make room again.
        t.failed_at("10.0.0.2", "late", now + MINUTE);
        assert_eq!(
            t.check_at("10.0.0.3", "late", now + MINUTE),
            Some(Limited::User)
        );
    }
}
