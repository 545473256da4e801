//! `[limits]`: how many failed logins a client address or a user name may
//! have in a window before its logins are refused without asking a plugin.

use super::{Invalid, invalid};
use crate::throttle::FailureLimits;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Failed logins from one client address per window; 0 = no limit.
    #[serde(default = "default_per_address")]
    pub failed_logins_per_address: u32,
    /// Failed logins as one user name per window; 0 = no limit.
    #[serde(default = "default_per_user")]
    pub failed_logins_per_user: u32,
    #[serde(default = "default_window", with = "super::duration")]
    pub failed_login_window: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            failed_logins_per_address: default_per_address(),
            failed_logins_per_user: default_per_user(),
            failed_login_window: default_window(),
        }
    }
}

fn default_per_address() -> u32 {
    FailureLimits::default().per_address
}
fn default_per_user() -> u32 {
    FailureLimits::default().per_user
}
fn default_window() -> Duration {
    FailureLimits::default().window
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let window = self.failed_login_window;
        if window < Duration::from_secs(1) || window > Duration::from_secs(24 * 3600) {
            return Err(invalid(
                "limits.failed_login_window",
                "must be between \"1s\" and \"24h\"",
            ));
        }
        Ok(())
    }

    pub fn failure_limits(&self) -> FailureLimits {
        FailureLimits {
            per_address: self.failed_logins_per_address,
            per_user: self.failed_logins_per_user,
            window: self.failed_login_window,
        }
    }
}
