//! The client commands as an operator runs them from a laptop: no
//! portcullis.toml and no issuer seed, only what the nats CLI uses (flags,
//! `NATS_*`, contexts under `XDG_CONFIG_HOME`). Each command runs in an
//! empty directory with its own `HOME` and `XDG_CONFIG_HOME`, so neither a
//! portcullis.toml nor the developer's nats contexts can leak in.

use anyhow::{Context, Result};
use portcullis_tests::{Stack, WAIT, portcullis_bin};
use std::path::Path;

/// The NATS variables a developer's shell might carry.
const NATS_VARS: [&str; 6] = [
    "NATS_URL",
    "NATS_CREDS",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_NKEY",
    "NATS_CONTEXT",
];

/// `portcullis ARGS` in `laptop` (also its HOME and XDG_CONFIG_HOME) with
/// `env`; whether it succeeded, its stdout and its stderr. Async: the
/// host runs on this test's runtime and must answer while it runs.
async fn portcullis(
    laptop: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(bool, String, String)> {
    let mut command = tokio::process::Command::new(portcullis_bin());
    command
        .args(args)
        .current_dir(laptop)
        .env("HOME", laptop)
        .env("XDG_CONFIG_HOME", laptop.join("config"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for var in NATS_VARS {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let out = tokio::time::timeout(WAIT, command.output())
        .await
        .with_context(|| format!("portcullis {args:?} did not finish"))??;
    Ok((
        out.status.success(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

/// `status --json` parsed: the host ids and each host's plugin names.
fn hosts(json: &str) -> Result<Vec<(String, Vec<String>)>> {
    let doc: serde_json::Value = serde_json::from_str(json).with_context(|| json.to_owned())?;
    doc["hosts"]
        .as_array()
        .context("a hosts array")?
        .iter()
        .map(|h| {
            let id = h["id"].as_str().context("a host id")?.to_owned();
            let plugins = h["plugins"]
                .as_array()
                .context("a plugins array")?
                .iter()
                .map(|p| p["name"].as_str().map(str::to_owned).context("a name"))
                .collect::<Result<_>>()?;
            Ok((id, plugins))
        })
        .collect()
}

#[tokio::test]
async fn status_and_plugin_list_work_from_flags_alone_without_a_portcullis_toml() -> Result<()> {
    let stack = Stack::static_users(true).await?;
    let laptop = tempfile::tempdir()?;
    let url = stack.server.url();
    let login = ["-s", url.as_str(), "--user", "auth", "--password", "auth"];
    let expected = vec![(stack.host.service_id.clone(), vec!["users".to_owned()])];

    let args = [&["status", "--interval", "100ms"][..], &login].concat();
    let (ok, out, err) = portcullis(laptop.path(), &args, &[]).await?;
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 host(s)"), "{out}");
    assert!(out.contains(&stack.host.service_id[..8]), "{out}");

    let args = [&["status", "--json", "--interval", "100ms"][..], &login].concat();
    let (ok, out, err) = portcullis(laptop.path(), &args, &[]).await?;
    assert!(ok, "{out}{err}");
    assert_eq!(hosts(&out)?, expected);

    // --watch: one JSON document per sample, bounded by --count.
    let args = [
        &["status", "--json", "--watch", "100ms", "--count", "2"][..],
        &login,
    ]
    .concat();
    let (ok, out, err) = portcullis(laptop.path(), &args, &[]).await?;
    assert!(ok, "{out}{err}");
    let samples: Vec<&str> = out.lines().collect();
    assert_eq!(samples.len(), 2, "{out}");
    for sample in samples {
        assert_eq!(hosts(sample)?, expected);
    }

    // The password from NATS_PASSWORD, the server from NATS_URL.
    let (ok, out, err) = portcullis(
        laptop.path(),
        &["plugin", "list", "--user", "auth"],
        &[("NATS_URL", &url), ("NATS_PASSWORD", "auth")],
    )
    .await?;
    assert!(ok, "{out}{err}");
    assert!(out.contains("users"), "{out}");
    assert!(out.contains(" ago") || out.contains("just now"), "{out}");

    // A wrong password is refused, and not repeated back.
    let (ok, out, err) = portcullis(
        laptop.path(),
        &[
            "status",
            "-s",
            &url,
            "--user",
            "auth",
            "--password",
            "wrong-pw",
        ],
        &[],
    )
    .await?;
    assert!(!ok, "{out}");
    assert!(err.contains("cannot connect to NATS"), "{err}");
    assert!(!err.contains("wrong-pw"), "{err}");
    Ok(())
}

#[tokio::test]
async fn status_reads_nats_cli_contexts() -> Result<()> {
    let stack = Stack::static_users(true).await?;
    let laptop = tempfile::tempdir()?;
    let contexts = laptop.path().join("config/nats/context");
    std::fs::create_dir_all(&contexts)?;
    let lab = serde_json::json!({
        "description": "the test server",
        "url": stack.server.url(),
        "user": "auth",
        "password": "auth",
        "creds": "",
        "nkey": "",
        "token": "",
        "nsc": "",
        "windows_ca_certs_match": null,
    });
    std::fs::write(contexts.join("lab.json"), lab.to_string())?;
    std::fs::write(
        contexts.join("ngs.json"),
        r#"{"url": "tls://connect.ngs.global", "nsc": "nsc://acme/app"}"#,
    )?;
    let expected = vec![(stack.host.service_id.clone(), vec!["users".to_owned()])];

    let status = ["status", "--json", "--interval", "100ms"];
    let (ok, out, err) = portcullis(
        laptop.path(),
        &[&status[..], &["--context", "lab"]].concat(),
        &[],
    )
    .await?;
    assert!(ok, "{out}{err}");
    assert_eq!(hosts(&out)?, expected);

    let (ok, out, err) = portcullis(laptop.path(), &status, &[("NATS_CONTEXT", "lab")]).await?;
    assert!(ok, "{out}{err}");
    assert_eq!(hosts(&out)?, expected);

    // The context `nats context select` chose, with nothing else given.
    std::fs::write(laptop.path().join("config/nats/context.txt"), "lab\n")?;
    let (ok, out, err) = portcullis(laptop.path(), &status, &[]).await?;
    assert!(ok, "{out}{err}");
    assert_eq!(hosts(&out)?, expected);

    // A context field portcullis cannot honour is named, not ignored.
    let (ok, _, err) = portcullis(
        laptop.path(),
        &[&status[..], &["--context", "ngs"]].concat(),
        &[],
    )
    .await?;
    assert!(!ok);
    assert!(
        err.contains("nats context ngs: `nsc` is not supported"),
        "{err}"
    );
    Ok(())
}
