//! Plugins from an OCI registry: a real registry (Debian's docker-registry),
//! a real nats-server, real clients, components from `plugins/`, and the
//! real `portcullis` and `wkg` binaries where the operator would use them.

use anyhow::{Context, Result, bail};
use nkeys::KeyPair;
use portcullis_sources::oci::{
    self, OciCache, OciError, OciRef, OciSource, Registry, Signature, TrustError,
};
use portcullis_tests::registry::{OciRegistry, wkg_bin};
use portcullis_tests::{
    Deployment, Host, HostProcess, LoginLoad, NatsServer, WAIT, plugin, portcullis_bin,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A repository name no earlier run used: the shared component cache
/// outlives runs, and registry ports are reused.
fn repo(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("auth/{name}-{}-{nanos}", std::process::id())
}

/// Push `wasm` to `reference`, signed by `signer` if given; the manifest
/// digest.
async fn push(reference: &str, wasm: &Path, signer: Option<&KeyPair>) -> Result<String> {
    let r = OciRef::parse(reference).map_err(anyhow::Error::msg)?;
    let registry = Registry::new(&r, false);
    let digest = registry.push_component(&r, std::fs::read(wasm)?).await?;
    if let Some(key) = signer {
        let sequence = oci::signature::next_sequence(0);
        let signature = Signature::sign(&r.signed_repository(), digest.as_str(), sequence, key)
            .map_err(anyhow::Error::msg)?;
        registry.push_signature(&r, &signature).await?;
    }
    Ok(digest.to_string())
}

/// A deployment whose one plugin comes from `reference`, trusting `signer`.
fn config(
    deployment: &Deployment,
    server: &NatsServer,
    reference: &str,
    signer: &KeyPair,
    extra: &str,
) -> Result<portcullis::config::Config> {
    // Waiting for a swap polls with a user the old version refuses: that is
    // not password guessing, so the failed-login limit stays out of it.
    let plugins = format!(
        "[limits]\nfailed_logins_per_user = 0\n\n[[plugins]]\nname = \"users\"\nwasm = \"{reference}\"\naccounts = [\"APP1\", \"APP2\"]\nconfig_file = \"users.json\"\n{extra}\n\n[trust]\ntrusted_signers = [\"{}\"]\n",
        signer.public_key()
    );
    deployment.write_host_config(&deployment.host_config(&server.url(), &plugins))
}

/// Like [`config`], with the deployment's own component cache (so a pull
/// really reaches the registry, and a restart finds only what it pulled);
/// the config file's path.
fn config_with_own_cache(
    deployment: &Deployment,
    server: &NatsServer,
    reference: &str,
    signer: &KeyPair,
) -> Result<std::path::PathBuf> {
    config(deployment, server, reference, signer, "")?;
    let path = deployment.dir.path().join("portcullis.toml");
    let text = std::fs::read_to_string(&path)?.replace(
        &format!(
            "cache_dir = \"{}\"",
            portcullis_tests::cache_dir().display()
        ),
        &format!(
            "cache_dir = \"{}\"",
            deployment.dir.path().join("cache").display()
        ),
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Admitted, or refused by an answer (anything else is an error).
async fn can_log_in(url: &str, user: &str) -> Result<bool> {
    portcullis_tests::admitted(portcullis_tests::login(url, user, user)).await
}

/// Wait (bounded) until `user` can or cannot log in.
async fn wait_for_login(url: &str, user: &str, admitted: bool) -> Result<Duration> {
    let started = Instant::now();
    while can_log_in(url, user).await? != admitted {
        if started.elapsed() > WAIT {
            bail!(
                "{user} still {}admitted after {WAIT:?}",
                if admitted { "not " } else { "" }
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

async fn cli(args: &[&str]) -> Result<(bool, String)> {
    cli_with_env(args, &[]).await
}

/// Point the tag of `reference` at `digest`, an earlier manifest of its
/// repository, as anyone with push rights can: the manifest is copied,
/// no signature is written.
async fn move_tag(reference: &str, digest: &str) -> Result<()> {
    let r = OciRef::parse(reference).map_err(anyhow::Error::msg)?;
    // Installs the TLS provider the client below needs to be built.
    let _ = Registry::new(&r, false);
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let (raw, _) = client
        .pull_manifest_raw(
            &oci_client::Reference::with_digest(
                r.registry.clone(),
                r.repository.clone(),
                digest.to_owned(),
            ),
            &auth,
            &[media_type],
        )
        .await?;
    let tagged = oci_client::Reference::with_tag(
        r.registry.clone(),
        r.repository.clone(),
        r.tag.clone().context("a tagged reference")?,
    );
    client
        .push_manifest_raw(&tagged, raw.to_vec(), media_type.parse()?)
        .await?;
    Ok(())
}

/// Someone with push rights but no signing key moves a tag back to an
/// older release, whose signature still holds. The host keeps the newer
/// one and says why; pinning the old digest or signing it anew (`plugin
/// sign`) is how an operator brings it back on purpose.
#[tokio::test]
async fn a_tag_moved_back_to_an_older_signed_release_is_refused() -> Result<()> {
    let registry = OciRegistry::start()?;
    let deployment = Deployment::new(true)?;
    let signer = KeyPair::new_user();
    let seed = deployment.dir.path().join("signer.nk");
    std::fs::write(&seed, signer.seed()?)?;
    let name = repo("users");
    let reference = registry.reference(&format!("{name}:stable"));
    let v1 = push(&reference, &plugin("static_users"), Some(&signer)).await?;
    let server = NatsServer::start(&deployment.server_config())?;
    let host = Host::start(config(&deployment, &server, &reference, &signer, "")?).await?;
    assert!(!can_log_in(&server.url(), "carol").await?);

    push(&reference, &plugin("users_v2"), Some(&signer)).await?;
    let before = host.metrics.reload_counts();
    host.request_reload().await?;
    host.wait_for_swaps(before, 1, 0).await?;
    assert!(can_log_in(&server.url(), "carol").await?, "v2 serves");

    move_tag(&reference, &v1).await?;
    let before = host.metrics.reload_counts();
    host.request_reload().await?;
    host.wait_for_swaps(before, 0, 1).await?;
    assert!(can_log_in(&server.url(), "carol").await?, "v2 still serves");

    let sources = portcullis_sources::Sources::new(
        Some(&portcullis_tests::cache_dir()),
        vec![signer.public_key()],
    );
    let fetch = |reference: String| {
        let sources = sources.clone();
        async move {
            sources
                .fetch(&portcullis_sources::PluginSource::Oci(source(&reference)?))
                .await
                .map_err(anyhow::Error::from)
        }
    };
    let refused = match fetch(reference.clone()).await {
        Ok(fetched) => bail!("the older release was accepted: {}", fetched.digest),
        Err(e) => e.to_string(),
    };
    eprintln!("{refused}");
    for expected in [&*reference, "older", "@sha256:", "plugin sign"] {
        assert!(refused.contains(expected), "{expected:?} not in: {refused}");
    }

    // Pinned by digest: the operator chose that release.
    let pinned = registry.reference(&format!("{name}@{v1}"));
    fetch(pinned).await?;

    // Signed anew, the older component is the newest release.
    let (ok, out) = cli(&[
        "plugin",
        "sign",
        &reference,
        "--signer",
        seed.to_str().unwrap(),
    ])
    .await?;
    assert!(ok, "{out}");
    let before = host.metrics.reload_counts();
    host.request_reload().await?;
    host.wait_for_swaps(before, 1, 0).await?;
    assert!(
        !can_log_in(&server.url(), "carol").await?,
        "v1 serves again"
    );
    host.stop().await
}

#[tokio::test]
async fn a_signed_component_pushed_by_the_cli_is_inspected_pulled_and_served() -> Result<()> {
    let registry = OciRegistry::start()?;
    let deployment = Deployment::new(true)?;
    let signer = KeyPair::new_user();
    let seed = deployment.dir.path().join("signer.nk");
    std::fs::write(&seed, signer.seed()?)?;
    let reference = registry.reference(&format!("{}:1", repo("static-users")));
    let wasm = plugin("static_users");

    let (ok, out) = cli(&[
        "plugin",
        "push",
        &reference,
        wasm.to_str().unwrap(),
        "--signer",
        seed.to_str().unwrap(),
    ])
    .await?;
    assert!(ok, "push failed: {out}");
    assert!(out.contains(&signer.public_key()), "{out}");
    assert!(
        !out.contains(&signer.seed()?),
        "the seed is never printed: {out}"
    );

    let (ok, out) = cli(&["plugin", "inspect", &reference]).await?;
    assert!(ok, "inspect failed: {out}");
    let sha = portcullis_protocol::digest::sha256_hex(&std::fs::read(&wasm)?);
    for expected in [
        "manifest   sha256:".to_owned(),
        format!("sha256     {sha}"),
        format!(
            "signer     {} (valid signature, release ",
            signer.public_key()
        ),
        "portcullis:authenticator/authenticator@".to_owned(),
        "imports:".to_owned(),
        "portcullis:authenticator/host".to_owned(),
    ] {
        assert!(
            out.contains(&expected),
            "inspect lacks {expected:?}:\n{out}"
        );
    }

    let pulled = deployment.dir.path().join("pulled.wasm");
    let pull_trusting = |key: String| {
        let (reference, pulled) = (reference.clone(), pulled.clone());
        async move {
            let out = pulled.to_str().unwrap();
            cli(&[
                "plugin",
                "pull",
                &reference,
                "-o",
                out,
                "--trusted-signer",
                &key,
            ])
            .await
        }
    };
    let (ok, out) = pull_trusting(signer.public_key()).await?;
    assert!(ok, "pull failed: {out}");
    assert_eq!(std::fs::read(&pulled)?, std::fs::read(&wasm)?);
    let (ok, out) = pull_trusting(KeyPair::new_user().public_key()).await?;
    assert!(!ok && out.contains("not in trusted_signers"), "{out}");

    let server = NatsServer::start(&deployment.server_config())?;
    let host = Host::start(config(&deployment, &server, &reference, &signer, "")?).await?;
    assert!(can_log_in(&server.url(), "alice").await?);
    assert!(!can_log_in(&server.url(), "carol").await?);
    let chain = host.registry.chain();
    let loaded = &chain.plugins()[0];
    assert_eq!(loaded.digest, sha);
    assert_eq!(loaded.signer.as_deref(), Some(&*signer.public_key()));
    host.stop().await
}

/// Move the tag from static-users to users-v2 (which admits carol) under
/// 4 clients logging in, and back: every swap is seen, no login fails.
async fn tag_moves_under_load(
    reference: &str,
    signer: &KeyPair,
    url: &str,
    swap: impl AsyncFn() -> Result<()>,
) -> Result<()> {
    let load = LoginLoad::start(&[url.to_owned()], 4);
    load.wait_for_logins(20).await?;
    for round in 0..2 {
        // Each window, from the push to the new behaviour seen, must hold
        // successful logins: a load stalled through the move fails here.
        let moved = Instant::now();
        push(reference, &plugin("users_v2"), Some(signer)).await?;
        swap().await?;
        let seen = wait_for_login(url, "carol", true).await?;
        load.ensure_logins_during(moved, Instant::now(), &format!("round {round} to v2"))?;
        eprintln!("round {round}: v2 seen after {seen:?}");
        load.wait_for_logins(20).await?;
        let moved = Instant::now();
        push(reference, &plugin("static_users"), Some(signer)).await?;
        swap().await?;
        wait_for_login(url, "carol", false).await?;
        load.ensure_logins_during(moved, Instant::now(), &format!("round {round} to v1"))?;
        load.wait_for_logins(20).await?;
    }
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(failed, 0, "failed logins during tag moves: {errors:?}");
    assert!(ok > 100, "only {ok} logins");
    Ok(())
}

/// A registry with static-users pushed and signed at `REPO:stable`, and a
/// nats-server for a host to serve.
struct Published {
    _registry: OciRegistry,
    deployment: Deployment,
    signer: KeyPair,
    reference: String,
    server: NatsServer,
}

/// Push static-users to `registry` at `REPO:tag`, signed by a new key.
async fn push_signed_users(registry: &OciRegistry, tag: &str) -> Result<(KeyPair, String)> {
    let signer = KeyPair::new_user();
    let reference = registry.reference(&format!("{}:{tag}", repo("users")));
    push(&reference, &plugin("static_users"), Some(&signer)).await?;
    Ok((signer, reference))
}

async fn published() -> Result<Published> {
    let registry = OciRegistry::start()?;
    let deployment = Deployment::new(true)?;
    let (signer, reference) = push_signed_users(&registry, "stable").await?;
    let server = NatsServer::start(&deployment.server_config())?;
    Ok(Published {
        _registry: registry,
        deployment,
        signer,
        reference,
        server,
    })
}

#[tokio::test]
async fn sighup_swaps_a_moved_tag_with_no_failed_login() -> Result<()> {
    let p = published().await?;
    config(&p.deployment, &p.server, &p.reference, &p.signer, "")?;
    let host = HostProcess::start(&p.deployment.dir.path().join("portcullis.toml"))?;
    tag_moves_under_load(&p.reference, &p.signer, &p.server.url(), async || {
        host.signal("HUP")
    })
    .await?;
    assert!(host.log().contains("reload requested"), "{}", host.log());
    Ok(())
}

#[tokio::test]
async fn refresh_swaps_a_moved_tag_with_no_failed_login() -> Result<()> {
    let p = published().await?;
    let refresh = "refresh = \"1s\"";
    let host = Host::start(config(
        &p.deployment,
        &p.server,
        &p.reference,
        &p.signer,
        refresh,
    )?)
    .await?;
    tag_moves_under_load(&p.reference, &p.signer, &p.server.url(), async || Ok(())).await?;
    host.stop().await
}

#[tokio::test]
async fn unsigned_untrusted_and_mismatched_artifacts_are_refused() -> Result<()> {
    let registry = OciRegistry::start()?;
    let deployment = Deployment::new(true)?;
    let signer = KeyPair::new_user();
    let stranger = KeyPair::new_user();
    let name = repo("users");
    let reference = registry.reference(&format!("{name}:1"));
    let v1 = push(&reference, &plugin("static_users"), Some(&signer)).await?;
    let server = NatsServer::start(&deployment.server_config())?;
    let host = Host::start(config(&deployment, &server, &reference, &signer, "")?).await?;
    let trusted = [signer.public_key()];

    // Each bad version goes to its own tag (so its signatures are its
    // own), then the plugin's tag is moved to it.
    type IsExpected = fn(&TrustError) -> bool;
    let bad_versions: [(&str, Option<&KeyPair>, IsExpected); 3] = [
        ("unsigned", None, |e| {
            matches!(e, TrustError::Unsigned { .. })
        }),
        ("stranger", Some(&stranger), |e| {
            matches!(e, TrustError::UntrustedSigner { .. })
        }),
        ("mismatch", None, |e| {
            matches!(e, TrustError::BadSignature { .. })
        }),
    ];
    for (case, key, expected) in bad_versions {
        let digest = push(&reference, &plugin("users_v2"), key).await?;
        if case == "mismatch" {
            // The trusted key's signature over v1, stored as v2's.
            let r = OciRef::parse(&reference).map_err(anyhow::Error::msg)?;
            let over_v1 = Signature::sign(&r.signed_repository(), &v1, 1, &signer)
                .map_err(anyhow::Error::msg)?;
            let relabelled = Signature {
                manifest: digest.clone(),
                ..over_v1
            };
            Registry::new(&r, false)
                .push_signature(&r, &relabelled)
                .await?;
        }
        let source = OciSource::new(OciRef::parse(&reference).map_err(anyhow::Error::msg)?);
        match oci::fetch(&source, &trusted, None).await {
            Err(OciError::Trust { source, .. }) if expected(&source) => {
                eprintln!("{case}: refused: {source}")
            }
            other => bail!("{case}: expected a trust refusal, got {other:?}"),
        }
        let before = host.metrics.reload_counts();
        host.request_reload().await?;
        host.wait_for_swaps(before, 0, 1).await?;
        assert!(
            can_log_in(&server.url(), "alice").await?,
            "{case}: v1 keeps serving"
        );
        assert!(
            !can_log_in(&server.url(), "carol").await?,
            "{case}: v2 never ran"
        );
    }

    // allow_unsigned = true: the unsigned version loads (with a warning).
    push(&reference, &plugin("users_v2"), None).await?;
    let mut text = std::fs::read_to_string(deployment.dir.path().join("portcullis.toml"))?;
    text = text.replace(
        "config_file = \"users.json\"",
        "config_file = \"users.json\"\nallow_unsigned = true",
    );
    std::fs::write(deployment.dir.path().join("portcullis.toml"), text)?;
    let before = host.metrics.reload_counts();
    host.request_reload().await?;
    host.wait_for_swaps(before, 1, 0).await?;
    assert!(can_log_in(&server.url(), "carol").await?);
    host.stop().await
}

#[tokio::test]
async fn a_blob_edited_on_the_registry_disk_is_refused() -> Result<()> {
    let registry = OciRegistry::start()?;
    let (signer, reference) = push_signed_users(&registry, "1").await?;
    let wasm = std::fs::read(plugin("static_users"))?;
    let layer = format!("sha256:{}", portcullis_protocol::digest::sha256_hex(&wasm));
    let path = registry.blob_path(&layer);
    let mut stored = std::fs::read(&path).context("the layer blob on disk")?;
    assert_eq!(stored, wasm);
    let middle = stored.len() / 2;
    stored[middle] ^= 0xff;
    std::fs::write(&path, stored)?;

    let source = OciSource::new(OciRef::parse(&reference).map_err(anyhow::Error::msg)?);
    let cache_dir = tempfile::tempdir()?;
    let cache = OciCache::new(cache_dir.path())?;
    match oci::fetch(&source, &[signer.public_key()], Some(&cache)).await {
        Err(e @ OciError::Digest { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&layer), "{message}");
        }
        other => bail!("expected a digest mismatch, got {other:?}"),
    }
    // Nothing of it was cached for a later offline start.
    assert!(cache.record(&reference)?.is_none());
    Ok(())
}

#[tokio::test]
async fn an_artifact_over_max_size_is_refused_before_it_is_downloaded() -> Result<()> {
    let registry = OciRegistry::start()?;
    let (signer, reference) = push_signed_users(&registry, "1").await?;
    let wasm = std::fs::read(plugin("static_users"))?;
    let source = OciSource {
        max_size: 64 * 1024,
        ..OciSource::new(OciRef::parse(&reference).map_err(anyhow::Error::msg)?)
    };
    assert!(wasm.len() > 64 * 1024);
    match oci::fetch(&source, &[signer.public_key()], None).await {
        Err(OciError::TooLarge { size, max, .. }) => {
            assert_eq!(size, wasm.len() as u64);
            assert_eq!(max, 64 * 1024);
        }
        other => bail!("expected too large, got {other:?}"),
    }
    // The registry's access log shows the manifest read, never the blob.
    let layer = format!("sha256:{}", portcullis_protocol::digest::sha256_hex(&wasm));
    let log = registry.log();
    assert!(log.contains("/manifests/1"), "{log}");
    assert!(
        !log.contains(&format!(
            "GET /v2/{}/blobs/{layer}",
            source.reference.repository
        )),
        "{log}"
    );
    Ok(())
}

/// Start `portcullis run` expecting it to fail; its log.
async fn failed_start(config: &Path) -> Result<String> {
    let (ok, log) = cli(&["run", "-c", config.to_str().unwrap()]).await?;
    assert!(!ok, "portcullis run started: {log}");
    Ok(log)
}

#[tokio::test]
async fn a_host_restarted_while_the_registry_is_down_serves_from_its_cache() -> Result<()> {
    let mut registry = OciRegistry::start()?;
    let deployment = Deployment::new(true)?;
    let signer = KeyPair::new_user();
    let name = repo("users");
    let tagged = registry.reference(&format!("{name}:1"));
    let digest = push(&tagged, &plugin("static_users"), Some(&signer)).await?;
    let pinned = registry.reference(&format!("{name}@{digest}"));
    let server = NatsServer::start(&deployment.server_config())?;

    // First start: both references are pulled while the registry is up.
    for reference in [&tagged, &pinned] {
        let path = config_with_own_cache(&deployment, &server, reference, &signer)?;
        let host = HostProcess::start(&path)?;
        assert!(can_log_in(&server.url(), "alice").await?);
        assert!(
            host.log().contains("component pulled and verified"),
            "{}",
            host.log()
        );
    }

    registry.stop();
    // The tag: the digest it last resolved to, and the log says so.
    let path = config_with_own_cache(&deployment, &server, &tagged, &signer)?;
    let host = HostProcess::start(&path)?;
    assert!(can_log_in(&server.url(), "alice").await?);
    let log = host.log();
    assert!(
        log.contains("registry unreachable: using the digest"),
        "{log}"
    );
    assert!(log.contains(&digest), "{log}");
    drop(host);

    // The pinned digest: from the cache, without asking the registry.
    let path = config_with_own_cache(&deployment, &server, &pinned, &signer)?;
    let host = HostProcess::start(&path)?;
    assert!(can_log_in(&server.url(), "alice").await?);
    assert!(
        !host.log().contains("registry unreachable"),
        "{}",
        host.log()
    );
    drop(host);

    // A tag never pulled: a clear startup error.
    let never = registry.reference(&format!("{name}:never-pulled"));
    let path = config_with_own_cache(&deployment, &server, &never, &signer)?;
    let log = failed_start(&path).await?;
    assert!(
        log.contains("registry unreachable") && log.contains("no earlier pull of it is cached"),
        "{log}"
    );
    assert!(log.contains(&never), "{log}");
    Ok(())
}

async fn wkg(args: &[&str]) -> Result<String> {
    let mut command = tokio::process::Command::new(wkg_bin());
    command.args(args);
    let (ok, text) = run(command).await?;
    anyhow::ensure!(ok, "wkg {args:?} failed: {text}");
    Ok(text)
}

#[tokio::test]
async fn wkg_and_portcullis_read_each_others_artifacts() -> Result<()> {
    let registry = OciRegistry::start()?;
    let deployment = Deployment::new(true)?;
    let signer = KeyPair::new_user();
    let address = registry.address();
    let wasm = plugin("static_users");

    // wkg pushes; `portcullis plugin sign` signs it; a host pulls and runs it.
    let by_wkg = format!("{address}/{}:1", repo("from-wkg"));
    wkg(&[
        "oci",
        "push",
        "--insecure",
        &address,
        &by_wkg,
        wasm.to_str().unwrap(),
    ])
    .await?;
    let reference = format!("oci://{by_wkg}");
    let seed = deployment.dir.path().join("signer.nk");
    std::fs::write(&seed, signer.seed()?)?;
    let (ok, out) = cli(&[
        "plugin",
        "sign",
        &reference,
        "--signer",
        seed.to_str().unwrap(),
    ])
    .await?;
    assert!(ok && out.contains(&signer.public_key()), "{out}");
    let server = NatsServer::start(&deployment.server_config())?;
    let host = Host::start(config(&deployment, &server, &reference, &signer, "")?).await?;
    assert!(can_log_in(&server.url(), "alice").await?);
    let chain = host.registry.chain();
    assert_eq!(
        chain.plugins()[0].digest,
        portcullis_protocol::digest::sha256_hex(&std::fs::read(&wasm)?)
    );
    host.stop().await?;

    // Portcullis pushes; wkg pulls the same bytes.
    let by_portcullis = format!("{address}/{}:1", repo("from-portcullis"));
    let (ok, out) = cli(&[
        "plugin",
        "push",
        &format!("oci://{by_portcullis}"),
        wasm.to_str().unwrap(),
        "--signer",
        seed.to_str().unwrap(),
    ])
    .await?;
    assert!(ok, "{out}");
    // Its config is the Wasm OCI one: the platform, the layer and the
    // component's WIT, which registries and other tools show.
    let pushed = OciRef::parse(&format!("oci://{by_portcullis}")).map_err(anyhow::Error::msg)?;
    let (manifest, _, _) = Registry::new(&pushed, false).resolve(&pushed).await?;
    assert_eq!(manifest.config.media_type, oci::artifact::CONFIG_MEDIA_TYPE);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.blob_path(&manifest.config.digest))?)?;
    assert_eq!(config["os"], "wasip2", "{config}");
    assert_eq!(
        config["layerDigests"][0], manifest.layers[0].digest,
        "{config}"
    );
    let names = |list: &str| config["component"][list].to_string();
    assert!(
        names("exports").contains("portcullis:authenticator/plugin@"),
        "{config}"
    );
    assert!(
        names("imports").contains("portcullis:authenticator/host@"),
        "{config}"
    );
    let pulled = deployment.dir.path().join("wkg-pulled.wasm");
    wkg(&[
        "oci",
        "pull",
        "--insecure",
        &address,
        &by_portcullis,
        "-o",
        pulled.to_str().unwrap(),
    ])
    .await?;
    assert_eq!(std::fs::read(&pulled)?, std::fs::read(&wasm)?);
    Ok(())
}

/// Run the CLI with extra environment (credentials are per process).
async fn cli_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<(bool, String)> {
    let mut command = tokio::process::Command::new(portcullis_bin());
    command
        .args(args)
        .env("PORTCULLIS_LOG", "debug")
        .env_remove(portcullis_sources::oci::auth::USERNAME_VAR)
        .env_remove(portcullis_sources::oci::auth::PASSWORD_VAR)
        .env_remove(portcullis_sources::oci::auth::REGISTRY_VAR);
    for (key, value) in env {
        command.env(key, value);
    }
    run(command).await
}

/// Run a command (bounded by `WAIT`); whether it succeeded, and its
/// stdout and stderr.
async fn run(mut command: tokio::process::Command) -> Result<(bool, String)> {
    let output = tokio::time::timeout(WAIT, command.stdin(std::process::Stdio::null()).output())
        .await
        .with_context(|| format!("{command:?} did not finish"))??;
    Ok((
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

#[tokio::test]
async fn registry_credentials_come_from_the_environment_or_docker_config_and_are_never_shown()
-> Result<()> {
    const PASSWORD: &str = "s3cret-registry-pass";
    let registry = OciRegistry::with_login("ci", PASSWORD)?;
    let dir = tempfile::tempdir()?;
    let signer = KeyPair::new_user();
    let seed = dir.path().join("signer.nk");
    std::fs::write(&seed, signer.seed()?)?;
    let reference = registry.reference(&format!("{}:1", repo("private")));
    let wasm = plugin("static_users");
    let push = [
        "plugin",
        "push",
        &reference,
        wasm.to_str().unwrap(),
        "--signer",
        seed.to_str().unwrap(),
    ];

    // No credentials: the registry says no, and the CLI says so.
    let (ok, out) = cli_with_env(&push, &[("DOCKER_CONFIG", dir.path().to_str().unwrap())]).await?;
    assert!(!ok, "pushed without credentials: {out}");

    // From the environment, for the registry named beside them; naming
    // none, they are not used, and the log says so.
    let address = registry.address();
    let unscoped = [
        (portcullis_sources::oci::auth::USERNAME_VAR, "ci"),
        (portcullis_sources::oci::auth::PASSWORD_VAR, PASSWORD),
    ];
    let (ok, out) = cli_with_env(&push, &unscoped).await?;
    assert!(!ok, "pushed with credentials that name no registry: {out}");
    assert!(
        out.contains(portcullis_sources::oci::auth::REGISTRY_VAR),
        "{out}"
    );
    let env = [
        unscoped[0],
        unscoped[1],
        (portcullis_sources::oci::auth::REGISTRY_VAR, &address),
    ];
    let (ok, out) = cli_with_env(&push, &env).await?;
    assert!(ok, "push with credentials from the environment: {out}");
    assert!(!out.contains(PASSWORD), "the password was shown: {out}");
    // Unsigned, the component's upload is the first request made.
    let unsigned = registry.reference(&format!("{}:1", repo("private-unsigned")));
    let (ok, out) = cli_with_env(
        &[
            "plugin",
            "push",
            &unsigned,
            wasm.to_str().unwrap(),
            "--unsigned",
        ],
        &env,
    )
    .await?;
    assert!(ok, "unsigned push with credentials: {out}");

    // From docker's config.json.
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("ci:{PASSWORD}"),
    );
    std::fs::write(
        dir.path().join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            registry.address()
        ),
    )?;
    let pulled = dir.path().join("pulled.wasm");
    let key = signer.public_key();
    let pull = [
        "plugin",
        "pull",
        &reference,
        "-o",
        pulled.to_str().unwrap(),
        "--trusted-signer",
        &key,
    ];
    let (ok, out) = cli_with_env(&pull, &[("DOCKER_CONFIG", dir.path().to_str().unwrap())]).await?;
    assert!(ok, "pull with credentials from config.json: {out}");
    assert!(
        !out.contains(PASSWORD) && !out.contains(&auth),
        "credentials shown: {out}"
    );
    assert_eq!(std::fs::read(&pulled)?, std::fs::read(&wasm)?);

    // From a credential helper named in credHelpers, found on the PATH,
    // asked for this registry (and only answering for it).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin)?;
    let helper = bin.join("docker-credential-portcullis-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread registry\n[ \"$registry\" = \"{address}\" ] || exit 3\n\
             echo '{{\"ServerURL\":\"{address}\",\"Username\":\"ci\",\"Secret\":\"{PASSWORD}\"}}'\n"
        ),
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"credHelpers": {{"{address}": "portcullis-test"}}}}"#),
    )?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::fs::remove_file(&pulled)?;
    let (ok, out) = cli_with_env(
        &pull,
        &[
            ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
            ("PATH", &path),
        ],
    )
    .await?;
    assert!(ok, "pull with credentials from a credential helper: {out}");
    assert!(!out.contains(PASSWORD), "credentials shown: {out}");
    assert_eq!(std::fs::read(&pulled)?, std::fs::read(&wasm)?);
    Ok(())
}

/// A manifest of one `application/wasm` layer whose digest is `layer_digest`.
fn manifest_naming(layer_digest: &str) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.wasm.config.v0+json",
            "digest": format!("sha256:{}", portcullis_protocol::digest::sha256_hex(b"{}")),
            "size": 2,
        },
        "layers": [{
            "mediaType": "application/wasm",
            "digest": layer_digest,
            "size": 6,
        }],
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn layer_digest_with_a_path_is_refused_before_the_file_system() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache_dir = dir.path().join("cache");
    std::fs::create_dir(&cache_dir)?;
    // One canary named by an absolute path, one reached by climbing out of
    // the cache's blob directory (cache/oci/blobs/sha256/../../../..).
    let absolute = dir.path().join("absolute-canary");
    let relative = dir.path().join("relative-canary");
    for canary in [&absolute, &relative] {
        std::fs::write(canary, b"canary")?;
    }
    let hostile = [
        ("absolute", format!("sha256:{}", absolute.display())),
        ("relative", "sha256:../../../../relative-canary".to_owned()),
    ];
    let routes = hostile
        .iter()
        .map(|(tag, digest)| {
            let manifest = portcullis_tests::registry::Canned {
                status: 200,
                content_type: "application/vnd.oci.image.manifest.v1+json",
                body: manifest_naming(digest),
            };
            (format!("/v2/evil/manifests/{tag}"), manifest)
        })
        .collect();
    let registry = portcullis_tests::registry::FakeRegistry::start(routes, false).await?;
    let cache = OciCache::new(&cache_dir)?;
    for (tag, digest) in &hostile {
        let reference = registry.reference(&format!("evil:{tag}"));
        let source = OciSource::new(OciRef::parse(&reference).map_err(anyhow::Error::msg)?);
        let outcome = oci::fetch(&source, &[KeyPair::new_user().public_key()], Some(&cache)).await;
        for canary in [&absolute, &relative] {
            assert_eq!(
                std::fs::read(canary).ok().as_deref(),
                Some(&b"canary"[..]),
                "{tag}: {} was touched",
                canary.display()
            );
        }
        let message = match outcome {
            Err(e) => e.to_string(),
            Ok(pulled) => bail!("{tag}: loaded {pulled:?}"),
        };
        assert!(
            message.contains(&reference) && message.contains(digest),
            "{tag}: {message}"
        );
        assert!(
            message.contains("64 lowercase hex digits"),
            "{tag}: {message}"
        );
        eprintln!("{tag}: {message}");
    }
    let requests = registry.requests();
    assert!(
        !requests.iter().any(|r| r.contains("/blobs/")),
        "no blob is asked for: {requests:?}"
    );
    Ok(())
}

/// `reference` as a plugin source.
fn source(reference: &str) -> Result<OciSource> {
    Ok(OciSource::new(
        OciRef::parse(reference).map_err(anyhow::Error::msg)?,
    ))
}

#[tokio::test]
async fn a_tampered_cache_record_or_swapped_layer_is_never_loaded() -> Result<()> {
    let mut registry = OciRegistry::start()?;
    let deployment = Deployment::new(true)?;
    let signer = KeyPair::new_user();
    let trusted = [signer.public_key()];
    let name = repo("users");
    let v1 = registry.reference(&format!("{name}:1"));
    let v2 = registry.reference(&format!("{name}:2"));
    let v1_manifest = push(&v1, &plugin("static_users"), Some(&signer)).await?;
    push(&v2, &plugin("users_v2"), Some(&signer)).await?;
    let pinned = registry.reference(&format!("{name}@{v1_manifest}"));
    let v1_wasm = std::fs::read(plugin("static_users"))?;
    let v2_wasm = std::fs::read(plugin("users_v2"))?;

    // Both versions pulled (and cached) while the registry is up; both are
    // signed by the trusted key, so only the cache's own checks can tell
    // which bytes belong to which reference.
    let cache_dir = deployment.dir.path().join("cache");
    let cache = OciCache::new(&cache_dir)?;
    for reference in [&v1, &v2, &pinned] {
        oci::fetch(&source(reference)?, &trusted, Some(&cache)).await?;
    }
    let record = |reference: &str| -> Result<oci::cache::Resolved> {
        cache.record(reference)?.context("a cached record")
    };
    let genuine_v1 = record(&v1)?;
    let genuine_pinned = record(&pinned)?;
    let v2_record = record(&v2)?;

    // The record of :1 names v2's layer (cached, intact, signed for :2).
    let swapped_layer = oci::cache::Resolved {
        layer: v2_record.layer.clone(),
        size: v2_record.size,
        ..genuine_v1.clone()
    };
    // The record of the pinned reference is v2's, whole.
    let swapped_pin = oci::cache::Resolved {
        reference: pinned.clone(),
        ..v2_record.clone()
    };
    cache.put_record(&swapped_layer)?;
    cache.put_record(&swapped_pin)?;

    // Reachable: the registry's answer wins over the record.
    for reference in [&v1, &pinned] {
        let pulled = oci::fetch(&source(reference)?, &trusted, Some(&cache)).await?;
        assert!(pulled.bytes == v1_wasm, "{reference}: not v1");
    }

    cache.put_record(&swapped_layer)?;
    cache.put_record(&swapped_pin)?;
    registry.stop();
    // Unreachable: refused, saying why.
    for (reference, why) in [
        (&v1, "the record names layer"),
        (&pinned, "the reference pins"),
    ] {
        match oci::fetch(&source(reference)?, &trusted, Some(&cache)).await {
            Ok(pulled) => bail!(
                "{reference}: loaded {}",
                if pulled.bytes == v2_wasm {
                    "v2"
                } else {
                    "something"
                }
            ),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.contains(reference.as_str())
                        && message.contains("registry unreachable")
                        && message.contains("cached pull is refused")
                        && message.contains(why),
                    "{message}"
                );
                eprintln!("refused: {message}");
            }
        }
    }

    // The genuine record, but v1's cached layer file now holds v2.
    cache.put_record(&genuine_v1)?;
    cache.put_record(&genuine_pinned)?;
    let layer_file = cache_dir
        .join("oci/blobs/sha256")
        .join(genuine_v1.layer.hex());
    std::fs::remove_file(&layer_file)?;
    std::fs::write(&layer_file, &v2_wasm)?;
    match oci::fetch(&source(&v1)?, &trusted, Some(&cache)).await {
        Ok(_) => bail!("loaded a layer file that does not match its digest"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("cached pull is refused")
                    && message.contains("does not match its digest"),
                "{message}"
            );
            eprintln!("refused: {message}");
        }
    }

    // A host started on the tampered cache refuses to start, and says why.
    std::fs::write(&layer_file, &v1_wasm)?;
    cache.put_record(&swapped_layer)?;
    let server = NatsServer::start(&deployment.server_config())?;
    let path = config_with_own_cache(&deployment, &server, &v1, &signer)?;
    let log = failed_start(&path).await?;
    assert!(
        log.contains(&v1) && log.contains("the record names layer"),
        "{log}"
    );
    Ok(())
}

#[tokio::test]
async fn registry_credentials_from_the_environment_are_never_sent_to_another_registry() -> Result<()>
{
    const PASSWORD: &str = "s3cret-registry-pass";
    let theirs = OciRegistry::with_login("ci", PASSWORD)?;
    // Another registry, asking every client for a login as theirs does.
    let other = portcullis_tests::registry::FakeRegistry::start(vec![], true).await?;
    let dir = tempfile::tempdir()?;
    let docker_config = dir.path().to_str().unwrap();
    let address = theirs.address();
    let env = [
        (portcullis_sources::oci::auth::USERNAME_VAR, "ci"),
        (portcullis_sources::oci::auth::PASSWORD_VAR, PASSWORD),
        (portcullis_sources::oci::auth::REGISTRY_VAR, &address),
        ("DOCKER_CONFIG", docker_config),
    ];
    let wasm = plugin("static_users");
    let pulled = dir.path().join("pulled.wasm");
    let pull = |reference: String| {
        let pulled = pulled.to_str().unwrap().to_owned();
        async move {
            cli_with_env(
                &[
                    "plugin",
                    "pull",
                    &reference,
                    "-o",
                    &pulled,
                    "--allow-unsigned",
                ],
                &env,
            )
            .await
        }
    };

    let (ok, out) = pull(other.reference("auth/users:1")).await?;
    assert!(!ok, "pulled from a registry with nothing in it: {out}");
    let requests = other.requests();
    assert!(!requests.is_empty(), "the other registry was asked");
    for request in &requests {
        assert!(
            !request.to_ascii_lowercase().contains("authorization:"),
            "credentials sent to {} with {}",
            other.address(),
            request.lines().next().unwrap_or_default()
        );
    }
    assert!(!out.contains(PASSWORD), "the password was shown: {out}");

    // The same environment still logs in where the credentials belong.
    let reference = theirs.reference(&format!("{}:1", repo("private")));
    let seed = dir.path().join("signer.nk");
    std::fs::write(&seed, KeyPair::new_user().seed()?)?;
    let (ok, out) = cli_with_env(
        &[
            "plugin",
            "push",
            &reference,
            wasm.to_str().unwrap(),
            "--signer",
            seed.to_str().unwrap(),
        ],
        &env,
    )
    .await?;
    assert!(ok, "push with credentials for this registry: {out}");
    let (ok, out) = pull(reference).await?;
    assert!(ok, "pull with credentials for this registry: {out}");
    assert_eq!(std::fs::read(&pulled)?, std::fs::read(&wasm)?);
    Ok(())
}

/// cosign keeps its signatures under `sha256-HEX.sig`. Whoever writes that
/// tag (cosign, or anyone with push rights who wants a plugin to stop
/// loading) must neither erase our signature nor have theirs erased by
/// ours.
#[tokio::test]
async fn a_cosign_signature_at_the_sig_tag_neither_erases_nor_is_erased_by_ours() -> Result<()> {
    let registry = OciRegistry::start()?;
    let reference = registry.reference(&format!("{}:1", repo("cosign")));
    let r = OciRef::parse(&reference).map_err(anyhow::Error::msg)?;
    let client = Registry::new(&r, false);
    let signer = KeyPair::new_user();
    let digest = push(&reference, &plugin("static_users"), None).await?;
    let cosign_tag = r.with_tag(&format!("{}.sig", digest.replace(':', "-")));
    // Any artifact stands in for cosign's: what matters is who owns the tag.
    let cosign = client
        .push_component(&cosign_tag, std::fs::read(plugin("users_v2"))?)
        .await?;

    let ours =
        Signature::sign(&r.signed_repository(), &digest, 1, &signer).map_err(anyhow::Error::msg)?;
    client.push_signature(&r, &ours).await?;
    let (_, _, at_cosign_tag) = client.resolve(&cosign_tag).await?;
    assert_eq!(at_cosign_tag, cosign, "our signature replaced cosign's");

    // cosign signs again, after us: our signature still verifies.
    client
        .push_component(&cosign_tag, std::fs::read(plugin("users_v2"))?)
        .await?;
    let pulled = oci::fetch(&OciSource::new(r.clone()), &[signer.public_key()], None).await?;
    assert_eq!(pulled.signer.as_deref(), Some(&*signer.public_key()));
    Ok(())
}
