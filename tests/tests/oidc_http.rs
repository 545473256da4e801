//! The oidc plugin with its keys fetched from a running identity provider
//! (tests/idp.rs over HTTP on 127.0.0.1) under an `http` grant: discovery,
//! key rotation without a reload, and no refetch storm from tokens whose
//! key id exists nowhere.

use portcullis_tests::idp::{AUDIENCE, Idp, IdpServer};
use portcullis_tests::{Deployment, Stack, WAIT, expect_refused, user_info};
use serde_json::{Value, json};

/// The oidc_http_auth plugin table; `source` is `{"discovery": true}` or
/// `{"jwks_uri": ...}`. One instance, so the JWKS request counts are the
/// refetch policy of one instance, not of a pool.
fn plugin(deployment: &Deployment, idp: &IdpServer, source: Value) -> anyhow::Result<String> {
    let mut config = json!({
        "issuer": idp.issuer(),
        "audience": AUDIENCE,
        "rules": [
            { "account": "APP1",
              "permissions": {
                  "pub": { "allow": ["user.{sub}.>", "$SYS.REQ.USER.INFO"] },
                  "sub": { "allow": ["user.{sub}.>", "_INBOX.>"] } } }
        ]
    });
    for (key, value) in source.as_object().expect("an object") {
        config[key] = value.clone();
    }
    std::fs::write(deployment.dir.path().join("oidc.json"), config.to_string())?;
    Ok(format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "oidc"
wasm = "{}"
accounts = ["APP1"]
max_expiry = "1h"
timeout_ms = 2000
max_concurrency = 1
config_file = "oidc.json"
grants = {{ http = ["{}"] }}
"#,
        portcullis_tests::plugin("oidc_http_auth").display(),
        idp.http.origin()
    ))
}

fn with_token(token: String) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_token(token).connection_timeout(WAIT)
}

#[tokio::test]
async fn a_rotated_key_is_admitted_without_reload_and_unknown_kids_cause_no_refetch_storm()
-> anyhow::Result<()> {
    let key1 = Idp::new()?;
    let key2 = Idp::new()?;
    let idp = IdpServer::start(key1.jwks()).await?;
    let deployment = Deployment::new(true)?;
    let plugins = plugin(&deployment, &idp, json!({ "discovery": true }))?;
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let claims = |sub: &str| Idp::claims_of(&idp.issuer(), sub, 300);

    let client = with_token(key1.rs256(&claims("alice")))
        .connect(stack.server.url())
        .await?;
    assert_eq!(user_info(&client).await?["account"], "APP1");
    assert_eq!(idp.discovery_requests(), 1);
    assert_eq!(idp.jwks_requests(), 1);

    // The provider rotates: key 2 under new key ids, key 1 withdrawn.
    idp.publish(key2.jwks_with_kids("rsa-2", "ec-2"));
    let rotated = key2.sign(json!({ "alg": "RS256", "kid": "rsa-2" }), &claims("bob"));
    let client = with_token(rotated).connect(stack.server.url()).await?;
    let info = user_info(&client).await?;
    assert_eq!(
        (&info["account"], &info["user"]),
        (&json!("APP1"), &json!("bob"))
    );
    assert_eq!(
        idp.jwks_requests(),
        2,
        "the unknown kid fetched the keys once more, past the host's cache"
    );

    // Tokens under key ids that exist nowhere, right after that refetch:
    // denied, and the provider is not asked again.
    for i in 0..20 {
        let token = key2.sign(
            json!({ "alg": "ES256", "kid": format!("nowhere-{i}") }),
            &claims("mallory"),
        );
        let mark = stack.server.log_mark();
        expect_refused(with_token(token).connect(stack.server.url())).await?;
        stack
            .server
            .wait_for_log_since(
                mark,
                &format!("token key id \"nowhere-{i}\" is not in the JWKS"),
            )
            .await?;
    }
    assert_eq!(idp.jwks_requests(), 2, "no refetch storm");
    assert_eq!(idp.discovery_requests(), 1);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_provider_denies_with_the_reason() -> anyhow::Result<()> {
    let key = Idp::new()?;
    let idp = IdpServer::start(key.jwks()).await?;
    let deployment = Deployment::new(true)?;
    // A JWKS path the provider does not serve: 404.
    let plugins = plugin(
        &deployment,
        &idp,
        json!({ "jwks_uri": format!("{}/nothing-here", idp.http.origin()) }),
    )?;
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let token = key.rs256(&Idp::claims_of(&idp.issuer(), "alice", 300));
    let mark = stack.server.log_mark();
    expect_refused(with_token(token.clone()).connect(stack.server.url())).await?;
    let line = stack
        .server
        .wait_for_log_since(mark, "no keys from the identity provider yet")
        .await?;
    assert!(line.contains("HTTP status 404"), "{line}");
    assert!(!line.contains(&token[..40]), "the token leaked: {line}");
    Ok(())
}
