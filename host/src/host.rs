//! Wiring: from a validated [`Config`] to a serving host. Kept apart from
//! `main` so tests run the real host in-process with their own shutdown
//! signal and readiness notification.

use crate::callout::{AccountSigner, Callout, Signers, UserIssuer, Verifier};
use crate::config::{Config, Mode};
use crate::keys::{self, KeyError};
use crate::registry::{LoadError, Registry};
use crate::runtime::{Runtime, RuntimeError, RuntimeOptions};
use crate::service::{self, Connection, ServiceError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("[callout] keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Engine options for `config`.
pub fn runtime_options(config: &Config) -> RuntimeOptions {
    RuntimeOptions {
        cache_dir: config.cache_dir(),
        pool_instances: config.runtime.pool_instances,
        max_memory_bytes: config
            .plugins
            .iter()
            .map(|p| (p.memory_mb as usize) << 20)
            .max()
            .unwrap_or(0),
    }
}

/// Load keys and plugins: everything needed to answer requests.
pub async fn build(config: &Config) -> Result<Arc<Callout>, HostError> {
    let signers = signers(config)?;
    let verifier = Verifier {
        xkey: config.xkey_seed().map(|s| keys::xkey(&s)).transpose()?,
        servers: config.callout.servers.clone(),
        server_xkeys: config.callout.server_xkeys.clone(),
    };
    let runtime = Runtime::new(&runtime_options(config))?;
    let registry = Registry::load(config, runtime).await?;
    for p in registry.chain().plugins() {
        tracing::info!(plugin = p.plugin.name(), digest = %&p.digest[..12], accounts = ?p.policy.accounts, "plugin loaded");
    }
    Ok(Arc::new(Callout::new(
        signers,
        verifier,
        Arc::new(registry),
    )))
}

/// The signing keys `config` names, loaded.
pub fn signers(config: &Config) -> Result<Signers, KeyError> {
    let response = keys::account_key(&config.issuer_seed())?;
    let users = match config.callout.mode {
        Mode::Config => UserIssuer::Config(Box::new(response.clone())),
        Mode::Operator => {
            let mut accounts = BTreeMap::new();
            for (name, account) in &config.accounts {
                let key = keys::account_key(&config.signing_seed(account))?;
                accounts.insert(
                    name.clone(),
                    AccountSigner {
                        account: account.public_key.clone(),
                        key,
                        scoped: account.scoped,
                    },
                );
            }
            UserIssuer::Operator(accounts)
        }
    };
    let response_account = config
        .callout
        .callout_account
        .clone()
        .filter(|account| *account != response.public_key());
    Ok(Signers {
        response,
        response_account,
        users,
    })
}

/// Build the host, connect and serve until `shutdown`, then drain.
pub async fn run(
    config: &Config,
    shutdown: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), HostError> {
    let callout = build(config).await?;
    let client = service::connect(&Connection {
        nats: &config.nats,
        nkey: config.nats_nkey_seed(),
    })
    .await?;
    service::serve(client, &config.nats.queue, callout, shutdown, ready).await?;
    Ok(())
}
