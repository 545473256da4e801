//! Fleet-wide hot swap: plugin releases pushed to a JetStream object store
//! bucket with `portcullis plugin push`, picked up by every host of the
//! queue group, listed with `plugin list`, rolled back with `plugin
//! rollback`; releases not signed by a trusted key are refused by all.
//!
//! Under load, every push window (push to every host seen on the new
//! version) must contain successful logins, not only end with none failed.
//! How long a push takes to be seen is reported, not asserted: it is a
//! figure on a loaded machine, not the behaviour under test.

use nkeys::KeyPair;
use portcullis_sources::fleet::{Bucket, FleetError, wasm_object};
use portcullis_sources::{PluginSource, Sources};
use portcullis_tests::{
    Deployment, Host, LoginLoad, NatsServer, WAIT, admitted, login, plugin, portcullis_bin,
};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// A bucket name no other fleet uses: hosts remember the newest release
/// of each bucket and plugin in the shared cache directory, and the tests
/// of this file run side by side, each on its own server.
fn bucket_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("portcullis_plugins_{}_{nanos}", std::process::id())
}

/// A server with JetStream, a trusted signer, and hosts whose plugin is
/// `nats-object://BUCKET/users`, first pushed as static-users.
struct Fleet {
    deployment: Deployment,
    server: NatsServer,
    signer: KeyPair,
    bucket: String,
    /// What every host was started with (to start another).
    config: portcullis::config::Config,
    hosts: Vec<Host>,
}

impl Fleet {
    async fn start(hosts: usize) -> anyhow::Result<Fleet> {
        let deployment = Deployment::new(true)?;
        let server = NatsServer::start(&deployment.server_config_with_jetstream())?;
        let signer = KeyPair::new_user();
        std::fs::write(deployment.dir.path().join("signer.nk"), signer.seed()?)?;
        let bucket = bucket_name();
        let plugins = format!(
            r#"
[[plugins]]
name = "users"
wasm = "nats-object://{bucket}/users"
accounts = ["APP1", "APP2"]
config_file = "users.json"

[trust]
trusted_signers = ["{}"]
"#,
            signer.public_key()
        );
        let config =
            deployment.write_host_config(&deployment.host_config(&server.url(), &plugins))?;
        let fleet = Fleet {
            deployment,
            server,
            signer,
            bucket,
            config: config.clone(),
            hosts: Vec::new(),
        };
        fleet.push("users", &plugin("static_users"), None).await?;
        let mut fleet = fleet;
        for _ in 0..hosts {
            fleet.hosts.push(Host::start(config.clone()).await?);
        }
        Ok(fleet)
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.deployment.dir.path().join("portcullis.toml")
    }

    /// `portcullis ARGS -c portcullis.toml`; its stdout. Async: the hosts
    /// run on this test's runtime and must answer while it runs.
    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args).await?;
        anyhow::ensure!(
            out.status.success(),
            "portcullis {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `portcullis ARGS -c portcullis.toml`: whether it succeeded, and
    /// what it printed (stdout, then stderr).
    async fn try_cli(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let out = self.output(args).await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    async fn output(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(tokio::time::timeout(
            WAIT,
            Command::new(portcullis_bin())
                .args(args)
                .arg("-c")
                .arg(self.config_path())
                .kill_on_drop(true)
                .output(),
        )
        .await??)
    }

    /// The signing key's seed file.
    fn seed_path(&self) -> String {
        self.deployment
            .dir
            .path()
            .join("signer.nk")
            .display()
            .to_string()
    }

    /// `portcullis plugin push NAME WASM --signer signer.nk`.
    async fn push(
        &self,
        name: &str,
        wasm: &Path,
        config_file: Option<&Path>,
    ) -> anyhow::Result<()> {
        let mut args = vec![
            "plugin".to_owned(),
            "push".into(),
            name.into(),
            wasm.display().to_string(),
            "--signer".into(),
            self.seed_path(),
            "--bucket".into(),
            self.bucket.clone(),
        ];
        if let Some(f) = config_file {
            args.extend(["--config-file".into(), f.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(&args).await?;
        Ok(())
    }

    async fn bucket(&self) -> anyhow::Result<Bucket> {
        let client = login(&self.server.url(), "auth", "auth").await?;
        Ok(Bucket::open(&async_nats::jetstream::new(client), &self.bucket, false).await?)
    }

    /// Wait until every host runs `digest`.
    async fn wait_for_digest(&self, digest: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let running: Vec<String> = self
                .hosts
                .iter()
                .map(|h| h.registry.chain().plugins()[0].digest.clone())
                .collect();
            if running.iter().all(|d| d == digest) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "hosts run {running:?}, expected {digest}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Admitted, or refused by an answer (anything else is an error).
    async fn can_log_in(&self, user: &str) -> anyhow::Result<bool> {
        admitted(login(&self.server.url(), user, user)).await
    }
}

fn digest_of(path: &Path) -> anyhow::Result<String> {
    Ok(portcullis_protocol::digest::sha256_hex(&std::fs::read(
        path,
    )?))
}

#[tokio::test]
async fn pushed_versions_reach_every_host_under_load_and_roll_back() -> anyhow::Result<()> {
    let fleet = Fleet::start(2).await?;
    let v1 = plugin("static_users");
    let v2 = plugin("users_v2");
    assert!(!fleet.can_log_in("carol").await?);
    let load = LoginLoad::start(&[fleet.server.url()], 4);
    load.wait_for_logins(4).await?;

    let mut seen = Vec::new();
    for round in 0..5 {
        let to_v2 = round % 2 == 0;
        let wasm = if to_v2 { &v2 } else { &v1 };
        let pushed = Instant::now();
        fleet.push("users", wasm, None).await?;
        fleet.wait_for_digest(&digest_of(wasm)?).await?;
        // Both hosts of the queue group run it: whichever answers, carol's
        // fate is the new version's.
        for _ in 0..4 {
            assert_eq!(fleet.can_log_in("carol").await?, to_v2, "round {round}");
        }
        let elapsed = pushed.elapsed();
        load.ensure_logins_during(pushed, Instant::now(), &format!("round {round}"))?;
        seen.push(elapsed);
    }
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} logins failed: {errors:?}",
        ok + failed
    );
    assert!(ok > 0);
    seen.sort();
    eprintln!(
        "push -> every host on the new version and carol's login decided by it: median {:?}, max {:?}",
        seen[seen.len() / 2],
        seen[seen.len() - 1]
    );

    // `plugin list` shows both hosts with the running version and signer.
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&fleet.cli(&["plugin", "list", "--json"]).await?)?;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let mut ids: Vec<&str> = listed.iter().map(|h| h["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected: Vec<&str> = fleet.hosts.iter().map(|h| h.service_id.as_str()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    for host in &listed {
        let p = &host["plugins"][0];
        assert_eq!(p["name"], "users");
        assert_eq!(p["digest"], digest_of(&v2)?);
        assert_eq!(p["signer"], fleet.signer.public_key());
        assert_eq!(p["origin"], format!("nats-object://{}/users", fleet.bucket));
        assert!(p["loaded_at"].as_u64().unwrap() > 0);
    }

    // Rollback: every host goes back to the release before (v1).
    let seed = fleet.seed_path();
    fleet
        .cli(&[
            "plugin",
            "rollback",
            "users",
            "--bucket",
            &fleet.bucket,
            "--signer",
            &seed,
        ])
        .await?;
    fleet.wait_for_digest(&digest_of(&v1)?).await?;
    assert!(!fleet.can_log_in("carol").await?);
    Ok(())
}

#[tokio::test]
async fn a_release_carries_its_configuration() -> anyhow::Result<()> {
    let fleet = Fleet::start(1).await?;
    let users = fleet.deployment.dir.path().join("users-with-carol.json");
    std::fs::write(
        &users,
        r#"{"carol": {"pass": "carol", "account": "APP2"}, "alice": {"pass": "alice", "account": "APP1"}}"#,
    )?;
    let before = fleet.hosts[0].metrics.reload_counts();
    fleet
        .push("users", &plugin("static_users"), Some(&users))
        .await?;
    fleet.hosts[0].wait_for_swaps(before, 1, 0).await?;
    assert!(
        fleet.can_log_in("carol").await?,
        "the pushed directory serves"
    );
    assert!(
        !fleet.can_log_in("bob").await?,
        "the local users.json does not"
    );
    Ok(())
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_releases_are_refused_by_every_host() -> anyhow::Result<()> {
    let fleet = Fleet::start(2).await?;
    let good = digest_of(&plugin("static_users"))?;
    let bucket = fleet.bucket().await?;
    let v2 = std::fs::read(plugin("users_v2"))?;

    // Signed by a key nobody trusts; a trusted signer's name over a
    // signature for other digests (an edited or replayed manifest); no
    // signature at all.
    let stranger = KeyPair::new_user();
    for what in [
        "untrusted signer",
        "signature over other digests",
        "unsigned",
    ] {
        let before: Vec<_> = fleet
            .hosts
            .iter()
            .map(|h| h.metrics.reload_counts())
            .collect();
        // Write the release the way push does, then tamper with the manifest.
        let release = bucket.push("users", &v2, None, &stranger).await?;
        let mut manifest = bucket.manifest("users").await?;
        match what {
            "signature over other digests" => {
                let mut other = manifest.current.clone();
                other.wasm = "00".repeat(32);
                other.sign("users", &stranger)?;
                manifest.current.signer = fleet.signer.public_key();
                manifest.current.signature = other.signature;
            }
            "unsigned" => {
                manifest.current.signer.clear();
                manifest.current.signature.clear();
            }
            _ => {}
        }
        let text = serde_json::to_vec(&manifest)?;
        bucket.store().put("users", &mut text.as_slice()).await?;
        assert!(
            bucket
                .store()
                .info(wasm_object("users", &release.wasm))
                .await
                .is_ok(),
            "{what}: the component itself is in the bucket"
        );
        for (host, before) in fleet.hosts.iter().zip(before) {
            host.wait_for_swaps(before, 0, 1)
                .await
                .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
            assert_eq!(host.registry.chain().plugins()[0].digest, good, "{what}");
        }
        assert!(!fleet.can_log_in("carol").await?, "{what}: v2 never served");
        assert!(fleet.can_log_in("alice").await?, "{what}: v1 still serves");
    }
    Ok(())
}

/// Write access to the bucket without the signing key: a correctly signed
/// release whose component object was replaced afterwards. The signature
/// holds (it covers the digests, not the object), so only the check of
/// the object's bytes against the signed digest stands between the
/// attacker and every host; each host refuses the release and keeps v1.
#[tokio::test]
async fn a_component_object_replaced_after_signing_is_refused_by_every_host() -> anyhow::Result<()>
{
    let fleet = Fleet::start(2).await?;
    let good = digest_of(&plugin("static_users"))?;
    let bucket = fleet.bucket().await?;
    let v2 = std::fs::read(plugin("users_v2"))?;
    let trusted = [fleet.signer.public_key()];

    // Stage the component under an untrusted key (refused on signature,
    // before any object is read), then swap the object's bytes and sign
    // the manifest with the trusted key, as a push would have.
    let before: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| h.metrics.reload_counts())
        .collect();
    let release = bucket
        .push("users", &v2, None, &KeyPair::new_user())
        .await?;
    for (host, before) in fleet.hosts.iter().zip(before) {
        host.wait_for_swaps(before, 0, 1).await?;
    }
    let object = wasm_object("users", &release.wasm);
    let tampered = std::fs::read(plugin("hostile"))?;
    bucket
        .store()
        .put(object.as_str(), &mut tampered.as_slice())
        .await?;
    let mut manifest = bucket.manifest("users").await?;
    manifest.current.sign("users", &fleet.signer)?;

    let before: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| h.metrics.reload_counts())
        .collect();
    let text = serde_json::to_vec(&manifest)?;
    bucket.store().put("users", &mut text.as_slice()).await?;
    match bucket.fetch("users", &trusted).await {
        Err(FleetError::DigestMismatch { expected, .. }) => assert_eq!(expected, release.wasm),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a replaced component object verified"),
    }
    for (host, before) in fleet.hosts.iter().zip(before) {
        host.wait_for_swaps(before, 0, 1).await?;
        assert_eq!(host.registry.chain().plugins()[0].digest, good);
    }
    assert!(!fleet.can_log_in("carol").await?, "v2 never served");
    assert!(fleet.can_log_in("alice").await?, "v1 still serves");
    Ok(())
}

/// Reload counts of every host, to wait for what a change does to each.
fn counts(fleet: &Fleet) -> Vec<portcullis::metrics::ReloadCounts> {
    fleet
        .hosts
        .iter()
        .map(|h| h.metrics.reload_counts())
        .collect()
}

/// Write access to the bucket without the signing key: the manifest of an
/// earlier release, whose signature still holds, written back as the
/// current one (to bring back, say, a configuration with a revoked
/// password). Every host refuses it and keeps the newer release, and a
/// host started afterwards refuses it too: the newest release accepted
/// is remembered beside the compile cache.
#[tokio::test]
async fn an_older_signed_release_written_back_to_the_bucket_is_refused() -> anyhow::Result<()> {
    let fleet = Fleet::start(2).await?;
    let bucket = fleet.bucket().await?;
    let older = bucket.manifest("users").await?;
    let v2 = plugin("users_v2");
    fleet.push("users", &v2, None).await?;
    fleet.wait_for_digest(&digest_of(&v2)?).await?;
    let newer = bucket.manifest("users").await?;
    assert!(fleet.can_log_in("carol").await?, "v2 serves");

    let before = counts(&fleet);
    let text = serde_json::to_vec(&older)?;
    bucket.store().put("users", &mut text.as_slice()).await?;
    for (host, before) in fleet.hosts.iter().zip(before) {
        host.wait_for_swaps(before, 0, 1).await?;
        assert_eq!(host.registry.chain().plugins()[0].digest, digest_of(&v2)?);
    }
    assert!(fleet.can_log_in("carol").await?, "v2 still serves");

    // The refusal names the source, both releases and the way out.
    let client = login(&fleet.server.url(), "auth", "auth").await?;
    let sources = Sources::new(
        Some(&portcullis_tests::cache_dir()),
        vec![fleet.signer.public_key()],
    )
    .with_nats(client);
    let source = PluginSource::Object {
        bucket: fleet.bucket.clone(),
        name: "users".into(),
    };
    let refused = match sources.fetch(&source).await {
        Ok(fetched) => anyhow::bail!("the older release was accepted: {}", fetched.digest),
        Err(e) => e.to_string(),
    };
    eprintln!("{refused}");
    for expected in [
        source.to_string(),
        older.current.sequence.to_string(),
        newer.current.sequence.to_string(),
        "plugin rollback".to_owned(),
        "--signer".to_owned(),
    ] {
        assert!(
            refused.contains(&expected),
            "{expected:?} not in: {refused}"
        );
    }

    // A host started now refuses it as well (it remembers across restarts).
    let restarted = match Host::start(fleet.config.clone()).await {
        Ok(_) => anyhow::bail!("a restarted host loaded the older release"),
        Err(e) => e.to_string(),
    };
    assert!(restarted.contains("older"), "{restarted}");
    Ok(())
}

/// A rollback is a new release: the previous component, signed again with
/// a newer sequence. Without a key it cannot be made (the release written
/// back would be refused), with one every host takes it, and so does a
/// host started afterwards.
#[tokio::test]
async fn a_rollback_signed_anew_is_accepted() -> anyhow::Result<()> {
    let fleet = Fleet::start(2).await?;
    let (v1, v2) = (plugin("static_users"), plugin("users_v2"));
    fleet.push("users", &v2, None).await?;
    fleet.wait_for_digest(&digest_of(&v2)?).await?;

    let (ok, out) = fleet
        .try_cli(&["plugin", "rollback", "users", "--bucket", &fleet.bucket])
        .await?;
    assert!(!ok, "a rollback without a key went through: {out}");
    assert!(out.contains("--signer"), "{out}");
    assert_eq!(
        fleet.bucket().await?.manifest("users").await?.current.wasm,
        digest_of(&v2)?,
        "nothing was written"
    );

    let seed = fleet.seed_path();
    let out = fleet
        .cli(&[
            "plugin",
            "rollback",
            "users",
            "--bucket",
            &fleet.bucket,
            "--signer",
            &seed,
        ])
        .await?;
    eprintln!("{out}");
    fleet.wait_for_digest(&digest_of(&v1)?).await?;
    assert!(!fleet.can_log_in("carol").await?, "v1 serves again");
    let manifest = fleet.bucket().await?.manifest("users").await?;
    assert_eq!(manifest.current.wasm, digest_of(&v1)?);

    let restarted = Host::start(fleet.config.clone()).await?;
    assert_eq!(
        restarted.registry.chain().plugins()[0].digest,
        digest_of(&v1)?
    );
    restarted.stop().await
}
