//! A server and a host started together, for the many tests that only need
//! logins to work: config mode from a [`Deployment`], operator mode from
//! what `portcullis init --mode operator` writes.

use crate::{Deployment, Host, NatsServer, WAIT, cache_dir, login, plugin, users_json};
use anyhow::Result;
use nkeys::KeyPair;
use std::path::Path;

/// A config-mode deployment with a server and a host, ready for logins.
pub struct Stack {
    pub deployment: Deployment,
    pub server: NatsServer,
    pub host: Host,
}

impl Stack {
    /// Server and host with the static-users plugin.
    pub async fn static_users(with_xkey: bool) -> Result<Stack> {
        let deployment = Deployment::new(with_xkey)?;
        let plugins = deployment.static_users();
        Stack::with_plugins(deployment, &plugins).await
    }

    pub async fn with_plugins(deployment: Deployment, plugins: &str) -> Result<Stack> {
        let server = NatsServer::start(&deployment.server_config())?;
        let config =
            deployment.write_host_config(&deployment.host_config(&server.url(), plugins))?;
        let host = Host::start(config).await?;
        Ok(Stack {
            deployment,
            server,
            host,
        })
    }

    /// Connect as `user`/`pass`.
    pub async fn login(
        &self,
        user: &str,
        pass: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        login(&self.server.url(), user, pass).await
    }
}

/// An operator-mode deployment written by `portcullis init --mode operator`,
/// its server and its host.
pub struct OperatorStack {
    pub dir: tempfile::TempDir,
    pub server: NatsServer,
    pub host: Host,
}

impl OperatorStack {
    /// `edit` may change the host configuration before the host starts.
    pub async fn start(
        xkey: bool,
        edit: impl FnOnce(&mut portcullis::config::Config),
    ) -> Result<OperatorStack> {
        OperatorStack::start_with(xkey, |_| Ok(()), edit).await
    }

    /// Like `start`, and `deployment` may change the generated files (see
    /// [`rewrite_account`]) before the server starts.
    pub async fn start_with(
        xkey: bool,
        deployment: impl FnOnce(&Path) -> Result<()>,
        edit: impl FnOnce(&mut portcullis::config::Config),
    ) -> Result<OperatorStack> {
        let dir = tempfile::tempdir()?;
        let options = portcullis_cli::init::InitOptions {
            plugin: plugin("static_users"),
            mode: portcullis::config::Mode::Operator,
            xkey,
            ..Default::default()
        };
        portcullis_cli::init::init(dir.path(), &options)?;
        std::fs::write(dir.path().join("users.json"), users_json())?;
        deployment(dir.path())?;
        let server = NatsServer::start(&std::fs::read_to_string(
            dir.path().join("nats-server.conf"),
        )?)?;
        let mut config = portcullis::config::Config::load(&dir.path().join("portcullis.toml"))?;
        config.nats.servers = vec![server.url()];
        config.runtime.cache_dir = Some(cache_dir());
        edit(&mut config);
        let host = Host::start(config).await?;
        Ok(OperatorStack { dir, server, host })
    }

    /// The public key `portcullis init` gave account `name`.
    pub fn account(&self, name: &str) -> Result<String> {
        let token = std::fs::read_to_string(self.dir.path().join(format!("accounts/{name}.jwt")))?;
        Ok(portcullis_protocol::accounts::decode_account(token.trim())?.sub)
    }

    /// Connect with the sentinel creds plus `user`/`pass`.
    pub async fn login(
        &self,
        user: &str,
        pass: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        self.options(user, pass)
            .await
            .connect(self.server.url())
            .await
    }

    /// Connect options: the sentinel creds plus `user`/`pass`.
    pub async fn options(&self, user: &str, pass: &str) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_credentials_file(self.dir.path().join("sentinel.creds"))
            .await
            .expect("sentinel.creds")
            .user_and_password(user.into(), pass.into())
            .connection_timeout(WAIT)
    }
}

/// Re-sign account `name` of an `init --mode operator` deployment in `dir`
/// after `edit`, and put the new JWT into nats-server.conf's preload.
pub fn rewrite_account(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut portcullis_protocol::accounts::Account),
) -> Result<()> {
    use portcullis_protocol::keys::{SeedSource, account_key};
    let path = dir.join(format!("accounts/{name}.jwt"));
    let old = std::fs::read_to_string(&path)?.trim().to_owned();
    let mut claims = portcullis_protocol::accounts::decode_account(&old)?;
    edit(&mut claims.nats);
    let operator_signing =
        KeyPair::from_seed(std::fs::read_to_string(dir.join("keys/operator-signing.nk"))?.trim())?;
    let new = portcullis_protocol::accounts::account_jwt(
        name,
        &claims.sub,
        claims.nats,
        &operator_signing,
        portcullis_protocol::time::unix_now(),
    )?;
    std::fs::write(&path, format!("{new}\n"))?;
    let conf = dir.join("nats-server.conf");
    let text = std::fs::read_to_string(&conf)?;
    anyhow::ensure!(
        text.contains(&old),
        "{name}'s JWT is not in nats-server.conf"
    );
    std::fs::write(&conf, text.replace(&old, &new))?;
    // The signing seed must still load: the caller changed the JWT only.
    account_key(&SeedSource::File(
        dir.join(format!("keys/{name}-signing.nk")),
    ))?;
    Ok(())
}
