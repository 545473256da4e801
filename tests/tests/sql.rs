//! Users in PostgreSQL: the sql-users plugin against a real server the
//! harness starts (initdb + pg_ctl on an ephemeral loopback port), through
//! a real nats-server and the real host. The operator's statements live in
//! portcullis.toml; the plugin only names them.

use portcullis_tests::{
    Deployment, LogMark, Postgres, REFUSED_WITHIN, Stack, WAIT, admitted, expect_refused, login,
    user_info,
};
use std::time::{Duration, Instant};

/// The table sql-users reads, with alice (plaintext) and bob (argon2, with
/// permissions and an expiry), as an operator would create it.
const SCHEMA: &str = r#"
CREATE TABLE nats_users (
    name text NOT NULL,
    pass text NOT NULL,
    account text NOT NULL,
    permissions jsonb,
    expires_at timestamptz
);
INSERT INTO nats_users VALUES
    ('alice', 'alice', 'APP1', NULL, NULL),
    ('bob', '$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$xAMWaGgK8mruxPM6JN9A4MWl5oGtgsap0PaSfrRGo2o',
     'APP2', '{"pub": {"allow": ["bob.>", "$SYS.REQ.USER.INFO"]}, "sub": {"allow": ["_INBOX.>"]}}',
     now() + interval '30 minutes'),
    ('twice', 'twice', 'APP1', NULL, NULL),
    ('twice', 'twice', 'APP1', NULL, NULL),
    ('big', repeat('x', 1000), 'APP1', NULL, NULL);
"#;

/// The user statement as docs/configuration.md shows it.
const USER_QUERY: &str = "SELECT pass, account, permissions, \
     extract(epoch FROM expires_at)::bigint AS expires FROM nats_users WHERE name = $1";

/// A database `users` (and `other`, the same server) for `pg`, with the
/// statements the tests use, and a sql-users plugin entry granted `grant`
/// running `query` on `database`.
fn plugins(
    deployment: &Deployment,
    pg: &Postgres,
    grant: &str,
    database: &str,
    query: &str,
    timeout_ms: u64,
) -> anyhow::Result<String> {
    pg.write_password(&deployment.dir.path().join("pg.pass"))?;
    let grants = if grant.is_empty() {
        String::new()
    } else {
        format!("grants = {{ sql = [\"{grant}\"] }}")
    };
    Ok(format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "sql"
wasm = "{wasm}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
timeout_ms = {timeout_ms}
{grants}
config = {{ database = "{database}", query = "{query}" }}

[databases.users]
url = "{url}"
password = "file:pg.pass"
max_rows = 1
max_field_bytes = 256

[databases.users.queries]
user = "{USER_QUERY}"
slow = "SELECT pass, account FROM nats_users, pg_sleep(30) WHERE name = $1"

[databases.other]
url = "{url}"
password = "file:pg.pass"

[databases.other.queries]
user = "SELECT pass, account FROM nats_users WHERE name = $1"
"#,
        wasm = portcullis_tests::plugin("sql_users").display(),
        url = pg.url(),
    ))
}

/// A PostgreSQL with the users table, and a stack whose plugin runs
/// `query` on `database` granted `grant`.
async fn stack(
    grant: &str,
    database: &str,
    query: &str,
    timeout_ms: u64,
) -> anyhow::Result<(Postgres, Stack)> {
    let pg = Postgres::start()?;
    pg.client().await?.batch_execute(SCHEMA).await?;
    let deployment = Deployment::new(true)?;
    let plugins = plugins(&deployment, &pg, grant, database, query, timeout_ms)?;
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    Ok((pg, stack))
}

/// Expect `user`/`pass` to be refused promptly, with `reason` in the
/// server's log.
async fn refused(stack: &Stack, user: &str, pass: &str, reason: &str) -> anyhow::Result<()> {
    let mark: LogMark = stack.server.log_mark();
    expect_refused(stack.login(user, pass))
        .await
        .map_err(|e| e.context(format!("{user} must be refused")))?;
    stack.server.wait_for_log_since(mark, reason).await?;
    Ok(())
}

#[tokio::test]
async fn users_log_in_from_rows_and_a_changed_row_counts_at_the_next_login() -> anyhow::Result<()> {
    let (pg, stack) = stack("users", "users", "user", 2000).await?;

    let alice = stack.login("alice", "alice").await?;
    assert_eq!(user_info(&alice).await?["account"], "APP1");

    let bob = stack.login("bob", "s3cret").await?;
    let info = user_info(&bob).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    assert!(
        info["permissions"]["publish"]["allow"]
            .to_string()
            .contains("bob.>"),
        "permissions from the row: {info}"
    );
    // Nanoseconds left, as nats-server reports them: the row's 30 minutes,
    // not the entry's max_expiry of an hour.
    let left = Duration::from_nanos(info["expires"].as_u64().unwrap_or(u64::MAX));
    assert!(
        left <= Duration::from_secs(30 * 60) && left > Duration::from_secs(25 * 60),
        "the row's expiry caps the JWT: {info}"
    );

    refused(&stack, "alice", "wrong", "wrong password").await?;
    refused(&stack, "eve", "eve", "unknown user").await?;

    let client = pg.client().await?;
    client
        .execute(
            "UPDATE nats_users SET account = 'APP2' WHERE name = 'alice'",
            &[],
        )
        .await?;
    let alice = stack.login("alice", "alice").await?;
    assert_eq!(
        user_info(&alice).await?["account"],
        "APP2",
        "the changed row is read at the next login"
    );
    client
        .execute("DELETE FROM nats_users WHERE name = 'alice'", &[])
        .await?;
    refused(&stack, "alice", "alice", "unknown user").await?;
    Ok(())
}

#[tokio::test]
async fn a_database_that_is_down_denies_promptly_and_serving_resumes() -> anyhow::Result<()> {
    let timeout_ms = 1000;
    let (pg, stack) = stack("users", "users", "user", timeout_ms).await?;
    assert!(admitted(stack.login("alice", "alice")).await?);

    // Logins in a loop while the database goes down under them.
    let url = stack.server.url();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                let (mut ok, mut refused) = (0u32, 0u32);
                let until = Instant::now() + WAIT;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                    let started = Instant::now();
                    let result = login(&url, "alice", "alice").await;
                    slowest = slowest.max(started.elapsed());
                    match result {
                        Ok(_) => ok += 1,
                        Err(_) => refused += 1,
                    }
                }
                (ok, refused, slowest)
            })
        })
        .collect();
    pg.stop()?;
    let down = Instant::now();
    refused(&stack, "alice", "alice", "unavailable").await?;
    // Every login keeps being answered while it is down.
    for _ in 0..5 {
        refused(&stack, "alice", "alice", "unavailable").await?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        let (ok, refused, slowest) = task.await?;
        assert!(
            slowest < REFUSED_WITHIN,
            "a login under load took {slowest:?} (ok {ok}, refused {refused}): no hang"
        );
    }
    eprintln!("denied while down for {:?}", down.elapsed());

    pg.start_again()?;
    let back = Instant::now();
    loop {
        if admitted(stack.login("alice", "alice")).await? {
            break;
        }
        anyhow::ensure!(
            back.elapsed() < WAIT,
            "not serving {WAIT:?} after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "serving again {:?} after the database came back",
        back.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_statement_past_the_deadline_is_cancelled_and_the_login_denied() -> anyhow::Result<()> {
    let (pg, stack) = stack("users", "users", "slow", 500).await?;
    let started = Instant::now();
    let mark = stack.server.log_mark();
    expect_refused(stack.login("alice", "alice")).await?;
    assert!(
        started.elapsed() < REFUSED_WITHIN,
        "denied at the deadline, not after the sleep"
    );
    // The plugin's "timeout" or the host's "time limit": the deadline of
    // the statement is the login's.
    stack.server.wait_for_log_since(mark, "time").await?;

    // The statement is gone from the server, not left sleeping.
    let client = pg.client().await?;
    let until = Instant::now() + WAIT;
    loop {
        let running: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()",
                &[],
            )
            .await?
            .get(0);
        if running == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "the statement still runs {WAIT:?} later"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_plugin_granted_one_database_cannot_query_another() -> anyhow::Result<()> {
    let (_pg, stack) = stack("other", "users", "user", 2000).await?;
    refused(&stack, "alice", "alice", "not granted").await
}

#[tokio::test]
async fn a_component_importing_sql_without_a_grant_is_refused_at_load() -> anyhow::Result<()> {
    let err = match stack("", "users", "user", 2000).await {
        Ok(_) => anyhow::bail!("the host must refuse a sql component without a grant"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("sql"), "the refusal names the grant: {err}");
    Ok(())
}

#[tokio::test]
async fn too_many_rows_or_too_large_a_field_is_refused() -> anyhow::Result<()> {
    let (_pg, stack) = stack("users", "users", "user", 2000).await?;
    refused(&stack, "twice", "twice", "more than 1 rows").await?;
    refused(&stack, "big", "x", "over 256 bytes").await?;
    Ok(())
}

#[tokio::test]
async fn check_prepares_every_statement_and_names_the_broken_ones() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    pg.client().await?.batch_execute(SCHEMA).await?;
    let deployment = Deployment::new(true)?;
    let plugins = plugins(&deployment, &pg, "users", "users", "user", 2000)?.replace(
        "[databases.other.queries]\n",
        "[databases.other.queries]\n\
         broken = \"SELECT nope FROM nats_users WHERE name = $1\"\n\
         when = \"SELECT expires_at FROM nats_users WHERE name = $1\"\n",
    );
    let config =
        deployment.write_host_config(&deployment.host_config("nats://127.0.0.1:1", &plugins))?;
    let databases = portcullis::databases::Databases::new(&config.databases)?;
    let problems: Vec<String> = databases
        .check(WAIT)
        .await
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].contains("[databases.other.queries] broken") && problems[0].contains("nope"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("[databases.other.queries] when") && problems[1].contains("::text"),
        "{problems:#?}"
    );

    pg.stop()?;
    let problems = databases.check(WAIT).await;
    assert!(
        problems.iter().any(|e| e
            .to_string()
            .starts_with("[databases.users]: cannot connect")),
        "{problems:#?}"
    );
    Ok(())
}

/// The sql-users vectors pass with rows from the vectors, as `plugin test`
/// runs them: no database anywhere, the grant taken from the vectors.
#[tokio::test]
async fn the_vectors_pass_with_rows_supplied_by_the_vectors() -> anyhow::Result<()> {
    let dir = portcullis_tests::workspace().join("plugins/sql-users/vectors");
    let vectors = portcullis::vectors::load_dir(&dir)?;
    let runtime = portcullis_runtime::Runtime::new(&portcullis_runtime::RuntimeOptions {
        cache_dir: Some(portcullis_tests::cache_dir()),
        pool_instances: Some(8),
        max_memory_bytes: 64 << 20,
        cache_max_age: None,
    })?;
    let pre = runtime.prepare(&std::fs::read(portcullis_tests::plugin("sql_users"))?)?;
    let entry = portcullis::config::PluginConfig::with_defaults("sql");
    let plugin = portcullis_runtime::Plugin::granted(
        "sql",
        pre,
        portcullis::registry::limits(&entry),
        std::fs::read_to_string(dir.join("config.json"))?,
        None,
        portcullis_runtime::Capabilities {
            sql: runtime.sql_grant(&portcullis::vectors::sql_databases(&vectors)),
            ..Default::default()
        },
    )
    .await?;
    let report = portcullis::vectors::run(&plugin, &vectors, None).await;
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert_eq!(report.results.len(), 8);
    Ok(())
}

/// One pooled connection, held by another plugin's statement that sleeps
/// through that plugin's longer deadline: a login waits for the pool no
/// longer than its own deadline and is denied as `unavailable`, never
/// queued behind the sleeper; once the sleeper is cancelled, the
/// connection serves again.
#[tokio::test]
async fn an_exhausted_pool_denies_at_the_deadline_and_serves_again() -> anyhow::Result<()> {
    const TIMEOUT_MS: u64 = 1000;
    const SLEEPER_TIMEOUT_MS: u64 = 3000;
    let pg = Postgres::start()?;
    pg.client().await?.batch_execute(SCHEMA).await?;
    let deployment = Deployment::new(true)?;
    let sleeper_entry = format!(
        r#"failed_logins_per_user = 0

[[plugins]]
name = "sleeper"
wasm = "{wasm}"
accounts = ["APP1"]
timeout_ms = {SLEEPER_TIMEOUT_MS}
grants = {{ sql = ["users"] }}
config = {{ database = "users", query = "hold" }}
match = {{ user = ["sleeper"] }}
"#,
        wasm = portcullis_tests::plugin("sql_users").display(),
    );
    let plugins = plugins(&deployment, &pg, "users", "users", "hold", TIMEOUT_MS)?
        .replacen("failed_logins_per_user = 0\n", &sleeper_entry, 1)
        .replace("max_rows = 1\n", "max_rows = 1\npool_size = 1\n")
        .replace(
            "[databases.users.queries]\n",
            "[databases.users.queries]\nhold = \"SELECT pass, account FROM nats_users, \
             pg_sleep(CASE WHEN $1 = 'sleeper' THEN 30 ELSE 0 END) WHERE name = $1\"\n",
        );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    assert!(
        admitted(stack.login("alice", "alice")).await?,
        "the pool serves"
    );

    let sleeper = {
        let url = stack.server.url();
        tokio::spawn(async move { expect_refused(login(&url, "sleeper", "x")).await })
    };
    // The sleeper holds the only connection once its statement runs.
    let client = pg.client().await?;
    let until = Instant::now() + WAIT;
    loop {
        let sleeping: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE query LIKE '%pg_sleep(CASE%' AND state = 'active' \
                 AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()",
                &[],
            )
            .await?
            .get(0);
        if sleeping > 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < until, "the sleeper never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    refused(&stack, "alice", "alice", "unavailable").await?;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(SLEEPER_TIMEOUT_MS - 500),
        "denied at its own deadline, not queued behind the sleeper: {took:?}"
    );
    assert!(
        sleeper.await?.is_err(),
        "the sleeper is denied at its deadline"
    );
    // The cancelled sleeper's connection went back to the pool.
    assert!(
        admitted(stack.login("alice", "alice")).await?,
        "the pool serves again"
    );
    Ok(())
}

/// A PostgreSQL serving TLS only (certificate from a test CA, `hostssl`),
/// and the host config of [`plugins`] with `[databases.users]` set to
/// `tls` (and `ca_file`, the test CA, when `with_ca`).
async fn tls_config(tls: &str, with_ca: bool) -> anyhow::Result<(Postgres, Deployment, String)> {
    tls_config_with(tls, with_ca, None).await
}

/// [`tls_config`], the server presenting a certificate of the test CA
/// for `other_name` instead of one for 127.0.0.1, when given.
async fn tls_config_with(
    tls: &str,
    with_ca: bool,
    other_name: Option<&str>,
) -> anyhow::Result<(Postgres, Deployment, String)> {
    let deployment = Deployment::new(true)?;
    let ca = portcullis_tests::Tls::new(deployment.dir.path())?;
    let pg = match other_name {
        None => Postgres::start_tls(&ca.server_cert, &ca.server_key)?,
        Some(name) => {
            let name = name.to_owned();
            let (cert, key) = ca.issue("elsewhere", |p| {
                p.subject_alt_names =
                    vec![rcgen::SanType::DnsName(name.try_into().expect("DNS name"))];
            })?;
            Postgres::start_tls(&cert, &key)?
        }
    };
    pg.client().await?.batch_execute(SCHEMA).await?;
    let ca_file = if with_ca {
        format!("ca_file = \"{}\"\n", ca.ca_file.display())
    } else {
        String::new()
    };
    let plugins = plugins(&deployment, &pg, "users", "users", "user", 2000)?
        .replace(
            "[databases.users]\n",
            &format!("[databases.users]\ntls = \"{tls}\"\n{ca_file}"),
        )
        // Not queried by these tests; over TLS too, so `check` passes it.
        .replace(
            "[databases.other]\n",
            "[databases.other]\ntls = \"require\"\n",
        );
    Ok((pg, deployment, plugins))
}

/// What `portcullis check` reports for the databases of `plugins`.
async fn check(deployment: &Deployment, plugins: &str) -> anyhow::Result<Vec<String>> {
    let config =
        deployment.write_host_config(&deployment.host_config("nats://127.0.0.1:1", plugins))?;
    let databases = portcullis::databases::Databases::new(&config.databases)?;
    Ok(databases
        .check(WAIT)
        .await
        .iter()
        .map(|e| e.to_string())
        .collect())
}

#[tokio::test]
async fn verify_full_with_the_ca_file_logs_users_in_over_tls() -> anyhow::Result<()> {
    let (pg, deployment, plugins) = tls_config("verify-full", true).await?;
    let problems = check(&deployment, &plugins).await?;
    assert!(problems.is_empty(), "{problems:#?}");
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let alice = stack.login("alice", "alice").await?;
    assert_eq!(user_info(&alice).await?["account"], "APP1");
    // The host's connection is encrypted: the server says so.
    let encrypted: i64 = pg
        .client()
        .await?
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name = 'portcullis'",
            &[],
        )
        .await?
        .get(0);
    assert!(encrypted >= 1, "the host's connection uses TLS");
    refused(&stack, "alice", "wrong", "wrong password").await?;
    Ok(())
}

#[tokio::test]
async fn verify_full_without_the_ca_refuses_the_certificate() -> anyhow::Result<()> {
    let (_pg, deployment, plugins) = tls_config("verify-full", false).await?;
    let problems = check(&deployment, &plugins).await?;
    assert!(
        problems.iter().any(
            |p| p.starts_with("[databases.users]: cannot connect") && p.contains("certificate")
        ),
        "check names the database and the certificate: {problems:#?}"
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    refused(&stack, "alice", "alice", "unavailable").await?;
    Ok(())
}

/// An attacker holding any certificate of the trusted CA (for another
/// name) cannot stand in for the database: the host name is checked too.
#[tokio::test]
async fn verify_full_refuses_a_trusted_certificate_for_another_host() -> anyhow::Result<()> {
    let (_pg, deployment, plugins) =
        tls_config_with("verify-full", true, Some("db.example.com")).await?;
    let problems = check(&deployment, &plugins).await?;
    assert!(
        problems.iter().any(
            |p| p.starts_with("[databases.users]: cannot connect") && p.contains("certificate")
        ),
        "the name mismatch is refused: {problems:#?}"
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    refused(&stack, "alice", "alice", "unavailable").await?;
    Ok(())
}

/// `check` finds nothing wrong with `plugins`, and alice logs in through
/// them into APP1.
async fn alice_logs_in(deployment: Deployment, plugins: &str) -> anyhow::Result<()> {
    let problems = check(&deployment, plugins).await?;
    assert!(problems.is_empty(), "{problems:#?}");
    let stack = Stack::with_plugins(deployment, plugins).await?;
    let alice = stack.login("alice", "alice").await?;
    assert_eq!(user_info(&alice).await?["account"], "APP1");
    Ok(())
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() -> anyhow::Result<()> {
    let (_pg, deployment, plugins) = tls_config("require", false).await?;
    alice_logs_in(deployment, &plugins).await
}

/// The password exchange is bound to the TLS session (SCRAM-SHA-256-PLUS,
/// `tls-server-end-point`), so a relay in the middle, which `require`
/// would let through, cannot pass it on: a URL that insists on binding
/// connects, and the driver refuses any server that does not bind.
#[tokio::test]
async fn the_password_exchange_is_bound_to_the_tls_session() -> anyhow::Result<()> {
    let (_pg, deployment, plugins) = tls_config("require", false).await?;
    let plugins = plugins.replace("/postgres\"", "/postgres?channel_binding=require\"");
    anyhow::ensure!(plugins.contains("channel_binding=require"), "{plugins}");
    alice_logs_in(deployment, &plugins).await
}

/// A server that logs users in by client certificate (`cert` in
/// pg_hba.conf) admits the host with `cert_file` and `key_file` and no
/// password. A key file others may read is refused at load without being
/// quoted, and without a certificate the server refuses the host.
#[tokio::test]
async fn a_client_certificate_logs_the_host_in_without_a_password() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let deployment = Deployment::new(true)?;
    let ca = portcullis_tests::Tls::new(deployment.dir.path())?;
    let pg = Postgres::start_tls_client_certs(&ca.server_cert, &ca.server_key, &ca.ca_file)?;
    pg.client().await?.batch_execute(SCHEMA).await?;
    let (cert, key) = ca.issue(portcullis_tests::PG_USER, |_| {})?;
    let base = plugins(&deployment, &pg, "users", "users", "user", 2000)?;
    let with_tls = |client: &str| {
        base.replace(
            "password = \"file:pg.pass\"\n",
            &format!(
                "tls = \"verify-full\"\nca_file = \"{}\"\n{client}",
                ca.ca_file.display()
            ),
        )
    };
    let with_cert = with_tls(&format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    anyhow::ensure!(!with_cert.contains("password"), "{with_cert}");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
    let refused = check(&deployment, &with_cert)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("key_file") && refused.contains("chmod 600"),
        "{refused}"
    );
    assert!(!refused.contains("PRIVATE KEY"), "{refused}");

    let problems = check(&deployment, &with_tls("")).await?;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("[databases.users]: cannot connect")),
        "no certificate, no connection: {problems:#?}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    alice_logs_in(deployment, &with_cert).await
}

#[tokio::test]
async fn disable_against_a_tls_only_server_is_refused_by_the_server() -> anyhow::Result<()> {
    let (_pg, deployment, plugins) = tls_config("disable", false).await?;
    let problems = check(&deployment, &plugins).await?;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("[databases.users]: cannot connect")
                && p.contains("no encryption")),
        "the server's reason (pg_hba.conf, no encryption): {problems:#?}"
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    refused(&stack, "alice", "alice", "unavailable").await?;
    Ok(())
}
