//! Host side of the WIT contract: generated bindings for every WIT version
//! the host serves, and the host imports plugins may call. WIT types only:
//! how a NATS request becomes an `auth-request` is the server's business.
//!
//! Each released version keeps its own file under `wit/vX.Y.Z/` and its
//! own generated module. Versions share the records of 0.1.0 (`types` is
//! unchanged since), so a request and a decision are one Rust type
//! whichever version a plugin was built for; only the host interface and
//! the capabilities differ.

use super::plugin_log::MAX_LOG_LINE;
use super::state::HostState;
use portcullis_protocol::logsafe::escape_within as escape;

/// `portcullis:authenticator@0.1.0`: host functions and the plugin export.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "authenticator",
        exports: { default: async },
        // bcrypt is slow by design: it runs off the executor, bounded by the
        // call's deadline, and may end the call with a timeout trap.
        imports: { "portcullis:authenticator/host.verify-password": async | trappable },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// `portcullis:authenticator@0.2.0`: 0.1.0 plus the capabilities an
/// operator grants (`sql`, `wasi:keyvalue/store`).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "wit/v0.2.0",
        world: "with-grants",
        exports: { default: async },
        imports: {
            "portcullis:authenticator/host.verify-password": async | trappable,
            "portcullis:authenticator/sql.query": async | trappable,
            // A read may wait for a stale copy to catch up, bounded by the
            // login's deadline (capabilities/kv.rs).
            "wasi:keyvalue/store": async | trappable,
        },
        with: {
            "portcullis:authenticator/types": super::v0_1::portcullis::authenticator::types,
            "wasi:keyvalue/store.bucket": crate::capabilities::kv::KvBucket,
        },
    });
}

pub use v0_1::portcullis;
use v0_1::portcullis::authenticator::host::{self, Level};
pub use v0_1::portcullis::authenticator::types::{AuthRequest, Decision, Grant};

/// The WIT package versions this host serves, oldest first.
pub const WIT_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];
/// Export name under which a plugin provides `configure`/`authenticate`.
pub const PLUGIN_INTERFACE: &str = "portcullis:authenticator/plugin";

/// Severity of a plugin log line, whichever version it was written for.
fn level_of_v0_2(level: v0_2::portcullis::authenticator::host::Level) -> Level {
    use v0_2::portcullis::authenticator::host::Level as L;
    match level {
        L::Trace => Level::Trace,
        L::Debug => Level::Debug,
        L::Info => Level::Info,
        L::Warn => Level::Warn,
        L::Error => Level::Error,
    }
}

impl v0_2::portcullis::authenticator::host::Host for HostState {
    fn log(&mut self, level: v0_2::portcullis::authenticator::host::Level, message: String) {
        host::Host::log(self, level_of_v0_2(level), message)
    }

    fn now_unix_ms(&mut self) -> u64 {
        host::Host::now_unix_ms(self)
    }

    fn verify_nkey_signature(
        &mut self,
        public_key: String,
        nonce: String,
        signature: String,
    ) -> bool {
        verify_nkey_signature(&public_key, &nonce, &signature)
    }

    async fn verify_password(&mut self, password: String, hash: String) -> wasmtime::Result<bool> {
        host::Host::verify_password(self, password, hash).await
    }
}

impl host::Host for HostState {
    /// Untrusted text into the operator's log: escaped so it cannot forge
    /// a line, within the call's budget (see [`crate::plugin_log`]). Lines
    /// the log filter would discard cost nothing and spend no budget.
    fn log(&mut self, level: Level, message: String) {
        let enabled = match level {
            Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
        };
        if !enabled {
            return;
        }
        if self.log.is_closed() {
            self.log.drop_line(message.len());
            return;
        }
        let line = escape(&message, MAX_LOG_LINE);
        if !self.log.admit(line.len()) {
            self.log.drop_line(message.len());
            return;
        }
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(target: "plugin", plugin, "{line}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin, "{line}"),
            Level::Info => tracing::info!(target: "plugin", plugin, "{line}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, "{line}"),
            Level::Error => tracing::error!(target: "plugin", plugin, "{line}"),
        }
    }

    fn now_unix_ms(&mut self) -> u64 {
        portcullis_protocol::time::unix_now_ms().max(0) as u64
    }

    fn verify_nkey_signature(
        &mut self,
        public_key: String,
        nonce: String,
        signature: String,
    ) -> bool {
        verify_nkey_signature(&public_key, &nonce, &signature)
    }

    async fn verify_password(&mut self, password: String, hash: String) -> wasmtime::Result<bool> {
        if let super::password::HashKind::TooCostly(cost) = super::password::hash_kind(&hash) {
            tracing::warn!(
                target: "plugin",
                plugin = &*self.plugin,
                cost,
                max = super::password::MAX_COST,
                "verify-password refused a bcrypt hash with a cost above the maximum"
            );
        }
        super::password::verify(password, hash, self.deadline)
            .await
            .map_err(|_| wasmtime::Error::new(super::state::DeadlineExceeded))
    }
}

impl v0_1::portcullis::authenticator::types::Host for HostState {}

/// NATS clients send the nonce signature base64url-encoded, some raw, some
/// padded, some in the standard alphabet; accept all of them.
pub fn verify_nkey_signature(public_key: &str, nonce: &str, signature: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = signature.trim_end_matches('=');
    let Ok(sig) = URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD_NO_PAD.decode(trimmed))
    else {
        return false;
    };
    nkeys::KeyPair::from_public_key(public_key)
        .map(|kp| kp.verify(nonce.as_bytes(), &sig).is_ok())
        .unwrap_or(false)
}

/// Longest text (deny reason, configuration error) taken from a plugin.
pub const MAX_REASON: usize = 256;

/// Plugin-provided text is untrusted: bound it and escape control
/// characters before it reaches a log line or the server.
pub fn clean_text(text: &str) -> String {
    escape(text, MAX_REASON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nkey_signatures_in_every_base64_spelling() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        let kp = nkeys::KeyPair::new_user();
        let sig = kp.sign(b"nonce-123").unwrap();
        let pk = kp.public_key();
        for enc in [
            URL_SAFE_NO_PAD.encode(&sig),
            URL_SAFE.encode(&sig),
            STANDARD.encode(&sig),
        ] {
            assert!(verify_nkey_signature(&pk, "nonce-123", &enc), "{enc}");
        }
        let good = URL_SAFE_NO_PAD.encode(&sig);
        assert!(!verify_nkey_signature(&pk, "nonce-124", &good));
        assert!(!verify_nkey_signature(
            &nkeys::KeyPair::new_user().public_key(),
            "nonce-123",
            &good
        ));
        assert!(!verify_nkey_signature("UNOTAKEY", "nonce-123", &good));
        assert!(!verify_nkey_signature(&pk, "nonce-123", "%%%"));
    }
}
