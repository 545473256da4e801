//! Running Portcullis as a NATS service: discovery through `$SRV`,
//! `portcullis status`, back-pressure that answers instead of queueing,
//! transparent reconnection after a server restart, and a compile cache
//! that does not grow forever.

use portcullis_tests::{
    Deployment, Host, Stack, WAIT, expect_refused, login, plugin, portcullis_bin,
};
use std::time::{Duration, Instant, SystemTime};

/// Static-users behind a plugin that makes mallory's login take 1.5 s, on
/// a host that decides one login at a time.
async fn one_at_a_time() -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        "[[plugins]]\nname = \"slow\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\ntimeout_ms = 5000\n\
         config = {{ attack = \"slow\", user = \"mallory\", delay_ms = 1500 }}\n{}",
        plugin("hostile").display(),
        deployment.static_users()
    );
    let server = portcullis_tests::NatsServer::start(&deployment.server_config())?;
    let text = deployment.host_config(&server.url(), &plugins).replace(
        "password = \"auth\"\n",
        "password = \"auth\"\nmax_in_flight = 1\n",
    );
    let host = Host::start(deployment.write_host_config(&text)?).await?;
    Ok(Stack {
        deployment,
        server,
        host,
    })
}

#[tokio::test]
async fn a_saturated_host_refuses_at_once_with_a_reason() -> anyhow::Result<()> {
    let stack = one_at_a_time().await?;
    let url = stack.server.url();
    let slow = tokio::spawn(async move { login(&url, "mallory", "x").await.map(|_| ()) });
    // The one slot is taken once mallory's request is in flight.
    let deadline = Instant::now() + WAIT;
    while stack
        .host
        .metrics
        .service
        .in_flight
        .load(std::sync::atomic::Ordering::Relaxed)
        < 1
    {
        anyhow::ensure!(Instant::now() < deadline, "mallory's request never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mark = stack.server.log_mark();
    expect_refused(stack.login("alice", "alice"))
        .await
        .map_err(|e| e.context("no slot for alice"))?;
    assert!(
        !slow.is_finished(),
        "alice was refused while mallory's login was still being decided"
    );
    stack
        .server
        .wait_for_log_since(mark, "callout service saturated")
        .await?;
    assert_eq!(stack.host.metrics.rejected.get(), 1);

    slow.await?
        .expect("mallory is admitted once the slow plugin answers");
    stack.login("alice", "alice").await?;
    Ok(())
}

#[tokio::test]
async fn every_host_is_discoverable_and_status_lists_the_fleet() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    let config =
        portcullis::config::Config::load(&stack.deployment.dir.path().join("portcullis.toml"))?;
    let second = Host::start(config).await?;
    stack.login("alice", "alice").await?;

    let admin = login(&stack.server.url(), "auth", "auth").await?;
    let pings = portcullis::admin::gather(
        &admin,
        "$SRV.PING.portcullis",
        Duration::from_millis(250),
        WAIT,
    )
    .await?;
    let mut ids: Vec<String> = pings
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            assert_eq!(v["name"], "portcullis");
            assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    let mut expected = vec![stack.host.service_id.clone(), second.service_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    let info = admin
        .request(
            format!("$SRV.INFO.portcullis.{}", stack.host.service_id),
            "".into(),
        )
        .await?;
    let info: serde_json::Value = serde_json::from_slice(&info.payload)?;
    assert_eq!(
        info["endpoints"][0]["subject"],
        portcullis::admin::PLUGINS_SUBJECT
    );

    let fleet = portcullis::admin::stats(&admin, WAIT).await?;
    assert_eq!(fleet.len(), 2);
    let answered: u64 = fleet.iter().map(|m| m.status.answered).sum();
    assert_eq!(answered, 1, "alice's login was answered by one of them");
    for member in &fleet {
        assert_eq!(member.status.plugins[0].name, "users");
    }

    // `portcullis status` prints both hosts. Async: the hosts answer on
    // this test's runtime while the command runs.
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(portcullis_bin())
            .args(["status", "--interval", "100ms", "-c"])
            .arg(stack.deployment.dir.path().join("portcullis.toml"))
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let text = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 host(s)"), "{text}");
    for id in &expected {
        assert!(text.contains(&id[..8]), "{id} in\n{text}");
    }
    assert!(text.contains("users@"), "{text}");

    // A host that stops leaves discovery.
    second.stop().await?;
    let pings = portcullis::admin::gather(
        &admin,
        "$SRV.PING.portcullis",
        Duration::from_millis(250),
        WAIT,
    )
    .await?;
    assert_eq!(pings.len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_host_serves_again_after_a_server_restart() -> anyhow::Result<()> {
    let mut stack = Stack::static_users(true).await?;
    stack.login("alice", "alice").await?;
    stack.server.restart()?;
    // The host reconnects and resubscribes on its own; each attempt is a
    // real login, bounded in count and time.
    let deadline = Instant::now() + WAIT;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match tokio::time::timeout(Duration::from_secs(5), stack.login("alice", "alice")).await {
            Ok(Ok(client)) => {
                client.flush().await?;
                break;
            }
            _ if Instant::now() < deadline && attempts < 200 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => anyhow::bail!("no login after the restart ({attempts} attempts): {other:?}"),
        }
    }
    expect_refused(stack.login("alice", "wrong"))
        .await
        .map_err(|e| e.context("still deciding, not just admitting"))?;
    Ok(())
}

/// A starting host removes compiled components no host loaded for
/// `cache_max_age` and registry pulls no reference names any more, keeps
/// the one it serves with and what a reference names, and serves.
#[tokio::test]
async fn the_host_prunes_unused_compiled_components_and_registry_pulls_at_start()
-> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let cache = tempfile::tempdir()?;
    let stale = cache
        .path()
        .join(format!("{}-wasmtime40-0.cwasm", "0".repeat(64)));
    std::fs::write(&stale, b"compiled by a host long gone")?;
    std::fs::File::options()
        .write(true)
        .open(&stale)?
        .set_modified(SystemTime::now() - Duration::from_secs(8 * 24 * 3600))?;
    let unrelated = cache.path().join("README");
    std::fs::write(&unrelated, b"not an entry")?;
    // Registry pulls, all eight days old: the layer a tag names now, and
    // the one it named before it moved.
    let pulls = portcullis_sources::oci::OciCache::new(cache.path())?;
    let eight_days_old = |bytes: &[u8]| -> anyhow::Result<std::path::PathBuf> {
        let digest = portcullis_protocol::digest::Digest::of(bytes);
        pulls.put_blob(&digest, bytes)?;
        let path = cache.path().join("oci/blobs/sha256").join(digest.hex());
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(SystemTime::now() - Duration::from_secs(8 * 24 * 3600))?;
        Ok(path)
    };
    let named = eight_days_old(b"layer the tag names")?;
    let left_behind = eight_days_old(b"layer the tag named before")?;
    let digest = portcullis_protocol::digest::Digest::of(b"layer the tag names");
    pulls.put_record(&portcullis_sources::oci::cache::Resolved {
        reference: "oci://127.0.0.1:5000/auth/users:1".into(),
        manifest: digest.clone(),
        layer: digest,
        size: 19,
        signatures: vec![],
        resolved_at: 1,
    })?;

    let server = portcullis_tests::NatsServer::start(&deployment.server_config())?;
    let shared = format!(
        "cache_dir = \"{}\"",
        portcullis_tests::cache_dir().display()
    );
    let text = deployment.host_config(&server.url(), &deployment.static_users());
    anyhow::ensure!(
        text.contains(&shared),
        "the host config names the shared cache"
    );
    let text = text.replace(
        &shared,
        &format!(
            "cache_dir = \"{}\"\ncache_max_age = \"7d\"",
            cache.path().display()
        ),
    );
    let host = Host::start(deployment.write_host_config(&text)?).await?;
    let stack = Stack {
        deployment,
        server,
        host,
    };

    // Pruning runs beside serving, once the host is ready.
    let deadline = Instant::now() + WAIT;
    while stale.exists() || left_behind.exists() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "stale entry or pull not pruned within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let entries: Vec<_> = std::fs::read_dir(cache.path())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    let compiled = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(compiled, 1, "the served plugin's entry stays: {entries:?}");
    assert!(unrelated.exists(), "files not named like entries stay");
    assert!(named.exists(), "the pull a reference names stays");
    stack.login("bob", "bob").await?;
    Ok(())
}

/// A field of `/proc/PID/status` given in kB (`RssAnon`, `VmHWM`), in KiB.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// A compile allocates a few hundred MiB; the serving host must neither
/// pay that peak (the compile runs in a child process the kernel kills
/// first) nor keep any of it. Measured against the same host loading the
/// same component from the compile cache, on a JavaScript plugin (12 MB
/// of WebAssembly, whose compile peaks at about 340 MiB).
#[tokio::test]
async fn a_host_that_compiled_its_plugin_keeps_no_more_heap_than_one_that_loaded_it_cached()
-> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let cache = tempfile::tempdir()?;
    let server = portcullis_tests::NatsServer::start(&deployment.server_config())?;
    let plugins = format!(
        "[[plugins]]\nname = \"users\"\nwasm = \"{}\"\naccounts = [\"APP1\", \"APP2\"]\n\
         max_expiry = \"1h\"\nconfig_file = \"users.json\"\n",
        plugin("static_users_js").display()
    );
    let shared = format!(
        "cache_dir = \"{}\"",
        portcullis_tests::cache_dir().display()
    );
    let text = deployment.host_config(&server.url(), &plugins);
    anyhow::ensure!(
        text.contains(&shared),
        "the host config names the shared cache"
    );
    let text = text.replace(
        &shared,
        &format!("cache_dir = \"{}\"", cache.path().display()),
    );
    deployment.write_host_config(&text)?;
    let config = deployment.dir.path().join("portcullis.toml");

    // Bounded by the compile, which tests running beside this one slow down.
    let start = Duration::from_secs(180);
    let mut anonymous = Vec::new();
    for pass in ["compiled", "cached"] {
        let mut host = portcullis_tests::HostProcess::start_within(&config, start)?;
        let compiled = host.log().contains("compiled users in");
        assert_eq!(compiled, pass == "compiled", "{pass}: {}", host.log());
        let peak = status_kib(host.pid(), "VmHWM")?;
        assert!(
            peak < 160 * 1024,
            "{pass}: the host peaked at {peak} KiB; the compile's own peak is not its to pay"
        );
        anonymous.push(status_kib(host.pid(), "RssAnon")?);
        host.signal("TERM")?;
        host.wait().await?;
    }
    let [compiled, cached] = anonymous[..] else {
        unreachable!()
    };
    // Compiling in the host with glibc's thresholds left to rise kept
    // 25-60 MiB more than the cached host.
    assert!(
        compiled <= cached + 12 * 1024,
        "the host that compiled holds {compiled} KiB of anonymous memory, \
         the one that loaded from the cache {cached} KiB"
    );
    Ok(())
}
