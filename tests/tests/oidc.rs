//! OAuth2 / OIDC bearer tokens end to end: tokens minted with freshly
//! generated RSA and EC keys, passed by real clients as token or password,
//! verified by the oidc plugin against the JWKS in its configuration.

use portcullis_tests::idp::{AUDIENCE, ISSUER, Idp};
use portcullis_tests::{Deployment, Stack, WAIT, connect_with_events, expect_refused, user_info};
use serde_json::json;
use std::time::Duration;

/// The oidc plugin table: admins go to APP2, everybody else to APP1 under
/// `user.{sub}.>`.
fn oidc_plugin(deployment: &Deployment, idp: &Idp) -> anyhow::Result<String> {
    let config = json!({
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks": idp.jwks(),
        "rules": [
            { "when": { "groups": "admins" }, "account": "APP2", "name": "admin {sub}" },
            { "account": "APP1",
              "permissions": {
                  "pub": { "allow": ["user.{sub}.>", "$SYS.REQ.USER.INFO"] },
                  "sub": { "allow": ["user.{sub}.>", "_INBOX.>"] } } }
        ]
    });
    std::fs::write(deployment.dir.path().join("oidc.json"), config.to_string())?;
    Ok(format!(
        r#"
[[plugins]]
name = "oidc"
wasm = "{}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
config_file = "oidc.json"
"#,
        portcullis_tests::plugin("oidc_auth").display()
    ))
}

async fn stack(idp: &Idp) -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?;
    let plugins = oidc_plugin(&deployment, idp)?;
    Stack::with_plugins(deployment, &plugins).await
}

fn with_token(token: String) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_token(token).connection_timeout(WAIT)
}

#[tokio::test]
async fn valid_tokens_are_admitted_and_the_user_never_outlives_the_token() -> anyhow::Result<()> {
    let idp = Idp::new()?;
    let stack = stack(&idp).await?;

    // RS256 as the CONNECT token.
    let client = with_token(idp.rs256(&Idp::claims("alice", 120)))
        .connect(stack.server.url())
        .await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP1", "{info}");
    assert_eq!(
        info["user"], "alice",
        "display name defaults to sub: {info}"
    );
    assert!(
        info["permissions"]["publish"]["allow"]
            .to_string()
            .contains("user.alice.>"),
        "{info}"
    );
    // `expires` is what is left of the user JWT, in nanoseconds: at most
    // the token's 120 s although the plugin may grant up to an hour.
    let left = Duration::from_nanos(info["expires"].as_u64().unwrap_or(u64::MAX));
    assert!(
        left <= Duration::from_secs(120) && left > Duration::from_secs(100),
        "user expires in {left:?}: {info}"
    );

    // ES256 as the password, with a group that routes to APP2.
    let mut admin = Idp::claims("bob", 600);
    admin["groups"] = json!(["staff", "admins"]);
    let client =
        async_nats::ConnectOptions::with_user_and_password("bob".into(), idp.es256(&admin))
            .connection_timeout(WAIT)
            .connect(stack.server.url())
            .await?;
    let mut sub = client.subscribe("anything.at.all").await?;
    client.publish("anything.at.all", "hi".into()).await?;
    let msg = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut sub)).await?;
    assert!(msg.is_some(), "APP2 admins are unrestricted");
    Ok(())
}

#[tokio::test]
async fn the_connection_ends_when_the_token_expires() -> anyhow::Result<()> {
    let idp = Idp::new()?;
    let stack = stack(&idp).await?;
    let options = with_token(idp.rs256(&Idp::claims("carol", 2)));
    let (_client, mut events) = connect_with_events(&stack.server.url(), options).await?;
    // nats-server disconnects a user whose JWT expired; the JWT carries the
    // token's exp, so this happens ~2 s in, not after the plugin's hour.
    let started = std::time::Instant::now();
    events.wait_for("User Authentication Expired").await?;
    // The bound is the behaviour (the token's exp, not the plugin's hour),
    // and generous; the figure itself is reported.
    let took = started.elapsed();
    eprintln!("disconnected {took:?} after connecting");
    assert!(took < Duration::from_secs(10), "{took:?}");
    Ok(())
}

#[tokio::test]
async fn broken_tokens_are_refused_with_the_reason() -> anyhow::Result<()> {
    let idp = Idp::new()?;
    let other = Idp::new()?;
    let stack = stack(&idp).await?;

    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = Idp::claims("mallory", 300);
        f(&mut c);
        c
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            idp.rs256(&edit(&|c| {
                c["exp"] = json!(portcullis_protocol::time::unix_now() - 60)
            })),
            "token expired at",
        ),
        (
            "wrong audience",
            idp.rs256(&edit(&|c| c["aud"] = json!("billing"))),
            "token audience does not include nats",
        ),
        (
            "wrong issuer",
            idp.es256(&edit(&|c| c["iss"] = json!("https://evil.example.test"))),
            "token issuer is not",
        ),
        (
            "bad signature (another key under the same kid)",
            other.rs256(&Idp::claims("mallory", 300)),
            "token signature does not verify",
        ),
        (
            "unknown kid",
            idp.sign(
                json!({"alg": "RS256", "kid": "rsa-9"}),
                &Idp::claims("mallory", 300),
            ),
            "token key id \"rsa-9\" is not in the JWKS",
        ),
        (
            "alg none",
            idp.sign(json!({"alg": "none"}), &Idp::claims("mallory", 300)),
            "unsigned token (alg \"none\") refused",
        ),
        (
            "not yet valid",
            idp.es256(&edit(&|c| {
                c["nbf"] = json!(portcullis_protocol::time::unix_now() + 3600)
            })),
            "token not valid before",
        ),
        (
            "sub that would widen user.{sub}.>",
            idp.rs256(&Idp::claims("*", 300)),
            "token claims: {sub} is not usable in a subject",
        ),
    ];
    for (what, token, reason) in cases {
        let mark = stack.server.log_mark();
        expect_refused(with_token(token).connect(stack.server.url()))
            .await
            .map_err(|e| e.context(what))?;
        stack
            .server
            .wait_for_log_since(mark, &format!("denied by plugin oidc: {reason}"))
            .await
            .map_err(|e| e.context(what))?;
    }

    // A token that is not a JWT is not the plugin's: with nobody else in
    // the chain, nobody accepts it.
    let mark = stack.server.log_mark();
    expect_refused(with_token("opaque-token".into()).connect(stack.server.url()))
        .await
        .map_err(|e| e.context("opaque token"))?;
    stack
        .server
        .wait_for_log_since(mark, "no plugin accepted this login")
        .await?;
    Ok(())
}
