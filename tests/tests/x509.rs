//! Mutual TLS end to end: a test CA, a nats-server with
//! `tls { verify: true }` on loopback, async-nats clients presenting
//! certificates; the server passes the verified chain to the x509 plugin,
//! which maps subject and SAN fields to accounts.

use portcullis_tests::{Deployment, Stack, expect_refused, user_info};
use rcgen::{DnType, SanType};

async fn stack() -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?.with_mutual_tls()?;
    let config = serde_json::json!({
        "rules": [
            { "when": { "ou": "devices", "san_dns": "*.devices.example.test" },
              "account": "APP1", "name": "{cn}",
              "permissions": {
                  "pub": { "allow": ["devices.{cn}.>", "$SYS.REQ.USER.INFO"] },
                  "sub": { "allow": ["devices.{cn}.>", "_INBOX.>"] } } },
            { "when": { "san_email": "*@ops.example.test", "issuer": "CN=Portcullis Test CA" },
              "account": "APP2", "name": "{san_email}" }
        ]
    });
    let plugins = format!(
        r#"
[[plugins]]
name = "x509"
wasm = "{}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
config_file = "x509.json"
"#,
        portcullis_tests::plugin("x509_auth").display()
    );
    std::fs::write(deployment.dir.path().join("x509.json"), config.to_string())?;
    Stack::with_plugins(deployment, &plugins).await
}

fn tls(stack: &Stack) -> &portcullis_tests::Tls {
    stack
        .deployment
        .tls
        .as_ref()
        .expect("mutual TLS deployment")
}

#[tokio::test]
async fn a_mapped_certificate_is_admitted_into_its_account() -> anyhow::Result<()> {
    let stack = stack().await?;
    let cert = tls(&stack).issue("dev1", |p| {
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "devices");
        p.subject_alt_names = vec![SanType::DnsName(
            "dev1.devices.example.test".try_into().expect("DNS name"),
        )];
    })?;
    let client = tls(&stack)
        .client(Some(&cert))
        .connect(stack.server.url())
        .await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP1", "{info}");
    assert_eq!(info["user"], "dev1", "{info}");
    let perms = info["permissions"].to_string();
    assert!(perms.contains("devices.dev1.>"), "{info}");
    // The certificate is valid for centuries; the user JWT for the x509
    // plugin's default hour at most.
    let left = std::time::Duration::from_nanos(info["expires"].as_u64().unwrap_or(u64::MAX));
    assert!(left <= std::time::Duration::from_secs(3600), "{info}");

    // A SAN e-mail routes to the second rule.
    let ops = tls(&stack).issue("alice", |p| {
        p.subject_alt_names = vec![SanType::Rfc822Name(
            "alice@ops.example.test".try_into().expect("e-mail"),
        )];
    })?;
    let client = tls(&stack)
        .client(Some(&ops))
        .connect(stack.server.url())
        .await?;
    client.publish("anywhere", "ok".into()).await?;
    client.flush().await?;
    Ok(())
}

#[tokio::test]
async fn an_unmapped_certificate_is_refused() -> anyhow::Result<()> {
    let stack = stack().await?;
    // Valid for the server's CA, but no rule claims it: OU fits the first
    // rule, the SAN does not.
    let cert = tls(&stack).issue("stranger", |p| {
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "devices");
        p.subject_alt_names = vec![SanType::DnsName(
            "stranger.example.test".try_into().expect("DNS name"),
        )];
    })?;
    let mark = stack.server.log_mark();
    expect_refused(tls(&stack).client(Some(&cert)).connect(stack.server.url()))
        .await
        .map_err(|e| e.context("unmapped certificate must be refused"))?;
    stack
        .server
        .wait_for_log_since(
            mark,
            "denied by plugin x509: no rule matches client certificate CN=stranger,OU=devices",
        )
        .await?;

    // A certificate whose CN cannot stand in a subject is refused, not
    // turned into a wildcard grant.
    let wild = tls(&stack).issue("x.>", |p| {
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "devices");
        p.subject_alt_names = vec![SanType::DnsName(
            "x.devices.example.test".try_into().expect("DNS name"),
        )];
    })?;
    let mark = stack.server.log_mark();
    expect_refused(tls(&stack).client(Some(&wild)).connect(stack.server.url()))
        .await
        .map_err(|e| e.context("CN with wildcards must be refused"))?;
    stack
        .server
        .wait_for_log_since(mark, "{cn} is not usable in a subject")
        .await?;
    Ok(())
}
