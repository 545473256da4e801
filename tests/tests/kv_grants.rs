//! Users in a JetStream KV bucket, read by static_users_kv.wasm under a
//! `kv` grant: a real nats-server with JetStream, the bucket written with
//! async-nats as `nats kv put` does, the host's watch keeping its copy
//! current. A put admits on the next login, a delete refuses, a new
//! password replaces the old one, all without a reload; a bucket the
//! plugin was not granted, a value over the host's cap, a component that
//! imports `wasi:keyvalue` without a grant and a server restart are each
//! met by a refusal or a recovery, never by a stale answer.
//!
//! Every wait for the watch is a wait for the revision the write returned
//! to reach the host's copy (its status channel), bounded by WAIT.

use async_nats::jetstream::{self, kv};
use portcullis_runtime::capabilities::kv::{KvCache, KvStatus, MAX_VALUE_BYTES};
use portcullis_tests::{
    Deployment, Host, NatsServer, WAIT, admitted, expect_refused, login, plugin,
};
use std::sync::Arc;

const APP1: &str = r#"{"pass": "dave-pw", "account": "APP1"}"#;

struct Setup {
    _deployment: Deployment,
    server: NatsServer,
    bucket: kv::Store,
    host: Host,
}

/// A server with JetStream, the bucket `users` (and `other`) in the
/// callout account, and a host whose plugin reads `kv_bucket` under
/// `grants`.
async fn setup(kv_bucket: &str, grants: &str) -> anyhow::Result<Setup> {
    let deployment = Deployment::new(true)?;
    let server = NatsServer::start(&deployment.server_config_with_jetstream())?;
    let bucket = create_buckets(&server).await?;
    let plugins = format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "users"
wasm = "{}"
accounts = ["APP1", "APP2"]
config = {{ kv_bucket = "{kv_bucket}" }}
grants = {grants}
"#,
        plugin("static_users_kv").display()
    );
    let config = deployment.write_host_config(&deployment.host_config(&server.url(), &plugins))?;
    let host = Host::start(config).await?;
    Ok(Setup {
        _deployment: deployment,
        server,
        bucket,
        host,
    })
}

async fn admin(server: &NatsServer) -> anyhow::Result<jetstream::Context> {
    let client = login(&server.url(), "auth", "auth").await?;
    Ok(jetstream::new(client))
}

async fn create_buckets(server: &NatsServer) -> anyhow::Result<kv::Store> {
    let js = admin(server).await?;
    js.create_key_value(kv::Config {
        bucket: "other".into(),
        ..Default::default()
    })
    .await?;
    Ok(js
        .create_key_value(kv::Config {
            bucket: "users".into(),
            history: 1,
            ..Default::default()
        })
        .await?)
}

impl Setup {
    /// The host's copy of `bucket`, as the loaded plugin holds it.
    fn copy(&self, bucket: &str) -> Arc<KvCache> {
        let chain = self.host.registry.chain();
        let grant = chain.plugins()[0].plugin.capabilities().kv.clone();
        grant.expect("a kv grant").buckets[bucket].clone()
    }

    /// Wait until the host's copy of `users` applied `revision`.
    async fn applied(&self, revision: u64) -> anyhow::Result<()> {
        let mut status = self.copy("users").subscribe();
        tokio::time::timeout(
            WAIT,
            status.wait_for(|s| matches!(s, KvStatus::Current(r) if *r >= revision)),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "revision {revision} not applied within {WAIT:?}: {:?}",
                self.copy("users").status()
            )
        })??;
        Ok(())
    }

    async fn put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let revision = self.bucket.put(key, value.to_owned().into()).await?;
        self.applied(revision).await
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.bucket.delete(key).await?;
        let revision = self.bucket.stream.get_info().await?.state.last_sequence;
        self.applied(revision).await
    }

    async fn admits(&self, user: &str, pass: &str) -> anyhow::Result<bool> {
        admitted(login(&self.server.url(), user, pass)).await
    }
}

#[tokio::test]
async fn a_put_admits_a_new_password_replaces_the_old_a_delete_refuses() -> anyhow::Result<()> {
    let s = setup("users", r#"{ kv = ["users"] }"#).await?;
    assert!(!s.admits("dave", "dave-pw").await?, "no key, no login");

    s.put("dave", APP1).await?;
    assert!(
        s.admits("dave", "dave-pw").await?,
        "admitted once his key exists"
    );
    assert!(!s.admits("dave", "wrong").await?);

    s.put("dave", r#"{"pass": "new-pw", "account": "APP1"}"#)
        .await?;
    assert!(
        !s.admits("dave", "dave-pw").await?,
        "the old password is refused"
    );
    assert!(s.admits("dave", "new-pw").await?, "the new one admitted");

    s.delete("dave").await?;
    expect_refused(login(&s.server.url(), "dave", "new-pw")).await?;
    Ok(())
}

#[tokio::test]
async fn an_ungranted_bucket_fails_the_open_and_the_login_is_denied_with_the_reason()
-> anyhow::Result<()> {
    // Granted "other", configured to read "users".
    let s = setup("users", r#"{ kv = ["other"] }"#).await?;
    s.bucket.put("dave", APP1.into()).await?;
    expect_refused(login(&s.server.url(), "dave", "dave-pw")).await?;
    let chain = s.host.registry.chain();
    let request = portcullis::vectors::parse_request(serde_json::json!({
        "connect_opts": {"user": "dave", "pass": "dave-pw"}
    }))?;
    let decision = chain.plugins()[0]
        .plugin
        .authenticate(&portcullis::request::auth_request(&request))
        .await?;
    let portcullis_runtime::bindings::Decision::Deny(reason) = decision else {
        panic!("an ungranted bucket must deny, got {decision:?}");
    };
    assert!(
        reason.contains("cannot open kv bucket \"users\"") || reason.contains("\"users\""),
        "{reason}"
    );
    assert!(reason.contains("not granted"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_value_over_the_cap_is_refused_not_cached() -> anyhow::Result<()> {
    let s = setup("users", r#"{ kv = ["users"] }"#).await?;
    s.put("dave", APP1).await?;
    assert!(s.admits("dave", "dave-pw").await?);
    // A valid entry padded past the cap: refused as too large, not parsed.
    let padding = "x".repeat(MAX_VALUE_BYTES);
    let huge = format!(
        r#"{{"pass": "dave-pw", "account": "APP1", "permissions": null, "_": "{padding}"}}"#
    );
    s.put("dave", &huge).await?;
    expect_refused(login(&s.server.url(), "dave", "dave-pw")).await?;
    let copy = s.copy("users");
    let err = copy
        .get("dave", std::time::Instant::now() + WAIT)
        .await
        .expect_err("an oversized value reads as an error");
    assert!(
        format!("{err:?}").contains("over the host's cap"),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_component_importing_keyvalue_without_a_grant_is_refused_at_load() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let server = NatsServer::start(&deployment.server_config_with_jetstream())?;
    create_buckets(&server).await?;
    let err = load_error(&deployment, &server, r#"config = { kv_bucket = "users" }"#).await?;
    assert!(err.contains("wasi:keyvalue/store"), "{err}");
    assert!(err.contains("kv = [...]"), "{err}");
    // static_users.wasm, built from the same code without the KV reads,
    // imports no wasi:keyvalue and needs no grant.
    let info = portcullis_runtime::inspect::inspect(&std::fs::read(plugin("static_users"))?)
        .map_err(anyhow::Error::msg)?;
    assert!(
        !info.imports.iter().any(|i| i.starts_with("wasi:keyvalue")),
        "{:?}",
        info.imports
    );
    Ok(())
}

/// Start a host whose one plugin is static-users-kv with `entry` (its
/// config and grants), and return why it refused to start.
async fn load_error(
    deployment: &Deployment,
    server: &NatsServer,
    entry: &str,
) -> anyhow::Result<String> {
    let plugins = format!(
        "[[plugins]]\nname = \"users\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\n{entry}\n",
        plugin("static_users_kv").display()
    );
    let config = deployment.write_host_config(&deployment.host_config(&server.url(), &plugins))?;
    match Host::start(config).await {
        Ok(_) => anyhow::bail!("the host must not start with {entry}"),
        Err(e) => Ok(e.to_string()),
    }
}

#[tokio::test]
async fn a_granted_bucket_that_does_not_exist_fails_the_load() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let server = NatsServer::start(&deployment.server_config_with_jetstream())?;
    let entry = r#"config = { kv_bucket = "missing" }
grants = { kv = ["missing"] }"#;
    let err = load_error(&deployment, &server, entry).await?;
    assert!(err.contains("\"missing\" does not exist"), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_watch_resumes_after_a_server_restart_and_sees_changes_made_meanwhile()
-> anyhow::Result<()> {
    let mut s = setup("users", r#"{ kv = ["users"] }"#).await?;
    s.put("dave", APP1).await?;
    assert!(s.admits("dave", "dave-pw").await?);

    s.server.stop();
    // The copy turns stale when the connection is lost: no answer from it.
    let copy = s.copy("users");
    let mut status = copy.subscribe();
    tokio::time::timeout(WAIT, status.wait_for(|s| matches!(s, KvStatus::Stale(_))))
        .await
        .map_err(|_| anyhow::anyhow!("the copy stayed current without a connection"))??;
    drop(status);
    s.server.start_again()?;

    // Revoke dave while the host reconnects: the rebuilt copy must not
    // keep him.
    let js = admin(&s.server).await?;
    let bucket = js.get_key_value("users").await?;
    bucket.delete("dave").await?;
    let revision = bucket
        .put("erin", r#"{"pass": "erin-pw", "account": "APP2"}"#.into())
        .await?;
    s.applied(revision).await?;
    expect_refused(login(&s.server.url(), "dave", "dave-pw")).await?;
    assert!(s.admits("erin", "erin-pw").await?);
    Ok(())
}
