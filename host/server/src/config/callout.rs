//! `[callout]` and `[accounts]`: which keys sign and seal, which servers
//! are answered, and (operator mode) the accounts users are placed in.

use super::{Invalid, invalid};
use portcullis_protocol::keys::{SeedSource, is_public_key};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `auth_callout` block in nats-server.conf.
    Config,
    /// Decentralised JWT accounts.
    Operator,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalloutConfig {
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Account seed that signs responses (and, in config mode, user JWTs):
    /// a file, or `env:NAME`.
    #[serde(deserialize_with = "super::seed::required")]
    pub issuer_seed: SeedSource,
    /// Curve seed; required when the server encrypts requests. With it,
    /// unsealed requests get no answer (see `accept_unsealed`).
    #[serde(default, deserialize_with = "super::seed::optional")]
    pub xkey_seed: Option<SeedSource>,
    /// Answer unsealed requests although `xkey_seed` is set: for a rollout
    /// in which some servers do not have the xkey yet. Warned about at
    /// start, since anyone who can publish on the callout subject can then
    /// make up a request.
    #[serde(default)]
    pub accept_unsealed: bool,
    /// Operator mode: public key of the callout account when `issuer_seed`
    /// is one of its signing keys.
    #[serde(default)]
    pub callout_account: Option<String>,
    /// When set, only requests signed by these server keys (N...) are
    /// answered. Server keys change on restart unless configured.
    #[serde(default)]
    pub servers: Vec<String>,
    /// When set, only requests sealed by these server xkeys (X...) are
    /// answered; unsealed requests are refused.
    #[serde(default)]
    pub server_xkeys: Vec<String>,
    /// The system account's name (the server's `system_account`); no
    /// plugin may place users there unless it is allowed to.
    #[serde(default = "default_system_account")]
    pub system_account: String,
    /// The callout account's name (config mode: `auth_callout.account`;
    /// operator mode: its `[accounts]` name); likewise protected.
    #[serde(default = "default_account")]
    pub account: String,
}

fn default_system_account() -> String {
    "SYS".into()
}

fn default_account() -> String {
    "AUTH".into()
}

/// nats-server's name for the system account when none is configured.
pub const DEFAULT_SERVER_SYSTEM_ACCOUNT: &str = "$SYS";

impl CalloutConfig {
    /// Accounts no plugin places users in unless allowed: whoever is there
    /// can read every authorization request or answer them.
    pub fn privileged_accounts(&self) -> [&str; 3] {
        [
            DEFAULT_SERVER_SYSTEM_ACCOUNT,
            &self.system_account,
            &self.account,
        ]
    }
}

fn default_mode() -> Mode {
    Mode::Config
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The account's public key (A...).
    pub public_key: String,
    /// Seed of a signing key of the account (or of the account itself): a
    /// file, or `env:NAME`.
    #[serde(deserialize_with = "super::seed::required")]
    pub signing_seed: SeedSource,
    /// The signing key is scoped: its template carries the permissions.
    #[serde(default)]
    pub scoped: bool,
    /// The account's JWT, when available: `check` verifies the signing key
    /// against it.
    #[serde(default)]
    pub jwt: Option<PathBuf>,
}

impl CalloutConfig {
    pub(super) fn validate(
        &self,
        accounts: &BTreeMap<String, AccountConfig>,
    ) -> Result<(), Invalid> {
        if self.mode == Mode::Config && !accounts.is_empty() {
            return Err(invalid(
                "accounts",
                "only used in operator mode; config mode names accounts as the server config does",
            ));
        }
        if let Some(account) = &self.callout_account {
            if self.mode != Mode::Operator {
                return Err(invalid(
                    "callout.callout_account",
                    "only used in operator mode",
                ));
            }
            if !is_public_key(account, 'A') {
                return Err(invalid(
                    "callout.callout_account",
                    "must be an account public key (A...)",
                ));
            }
        }
        if let Some(bad) = self.servers.iter().find(|k| !is_public_key(k, 'N')) {
            return Err(invalid(
                "callout.servers",
                format!("{bad:?} is not a server public key (N...)"),
            ));
        }
        if let Some(bad) = self.server_xkeys.iter().find(|k| !is_public_key(k, 'X')) {
            return Err(invalid(
                "callout.server_xkeys",
                format!("{bad:?} is not a curve public key (X...)"),
            ));
        }
        if !self.server_xkeys.is_empty() && self.xkey_seed.is_none() {
            return Err(invalid("callout.server_xkeys", "requires xkey_seed"));
        }
        if self.accept_unsealed && self.xkey_seed.is_none() {
            return Err(invalid(
                "callout.accept_unsealed",
                "requires xkey_seed (without one every request is unsealed anyway)",
            ));
        }
        if self.accept_unsealed && !self.server_xkeys.is_empty() {
            return Err(invalid(
                "callout.accept_unsealed",
                "contradicts server_xkeys, which answers only requests sealed by those servers",
            ));
        }
        for (name, account) in accounts {
            if !is_public_key(&account.public_key, 'A') {
                return Err(invalid(
                    format!("accounts.{name}.public_key"),
                    "must be an account public key (A...)",
                ));
            }
        }
        Ok(())
    }
}
