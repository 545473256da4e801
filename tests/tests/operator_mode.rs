//! Operator (decentralized JWT) mode end to end, on the deployment
//! `portcullis init --mode operator` writes: clients connect with the
//! sentinel creds plus user/password and land in APP1/APP2.

use portcullis_tests::{OperatorStack, connect_with_events, expect_refused, user_info};

async fn alice_and_bob(xkey: bool) -> anyhow::Result<()> {
    let stack = OperatorStack::start(xkey, |_| {}).await?;

    let alice = stack.login("alice", "alice").await?;
    let info = user_info(&alice).await?;
    assert_eq!(info["account"], stack.account("APP1")?, "{info}");

    let bob = stack.login("bob", "bob").await?;
    let info = user_info(&bob).await?;
    assert_eq!(info["account"], stack.account("APP2")?, "{info}");
    let perms = &info["permissions"];
    let publish: Vec<&str> = perms["publish"]["allow"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(publish.contains(&"bob.>"), "{info}");
    assert_eq!(perms["responses"]["max"], 1, "{info}");

    for (user, pass, reason) in [
        ("alice", "bob", "wrong password for user"),
        ("mallory", "x", "unknown user"),
    ] {
        let mark = stack.server.log_mark();
        expect_refused(stack.login(user, pass))
            .await
            .map_err(|e| e.context("refused"))?;
        stack.server.wait_for_log_since(mark, reason).await?;
    }
    Ok(())
}

#[tokio::test]
async fn alice_and_bob_land_in_their_accounts_with_xkey() -> anyhow::Result<()> {
    alice_and_bob(true).await
}

#[tokio::test]
async fn alice_and_bob_land_in_their_accounts_without_xkey() -> anyhow::Result<()> {
    alice_and_bob(false).await
}

#[tokio::test]
async fn a_client_without_the_sentinel_creds_is_refused() -> anyhow::Result<()> {
    let stack = OperatorStack::start(true, |_| {}).await?;
    expect_refused(
        async_nats::ConnectOptions::with_user_and_password("alice".into(), "alice".into())
            .connect(stack.server.url()),
    )
    .await
    .map_err(|e| e.context("no sentinel, no login"))?;
    Ok(())
}

#[tokio::test]
async fn the_host_refuses_accounts_outside_the_plugins_list() -> anyhow::Result<()> {
    let stack = OperatorStack::start(true, |config| {
        config.plugins[0].accounts = vec!["APP1".into()]
    })
    .await?;
    let mark = stack.server.log_mark();
    expect_refused(stack.login("bob", "bob"))
        .await
        .map_err(|e| e.context("APP2 is not the plugin's"))?;
    stack.server.wait_for_log_since(mark,
        "grant refused by host policy: account \"APP2\" is not one this plugin may place users in",
    ).await?;
    stack.login("alice", "alice").await?;
    Ok(())
}

#[tokio::test]
async fn a_short_expiry_disconnects_the_client() -> anyhow::Result<()> {
    let stack = OperatorStack::start(true, |config| {
        config.plugins[0].max_expiry =
            portcullis::policy::MaxExpiry::Limited(std::time::Duration::from_secs(2));
    })
    .await?;
    let options = stack.options("alice", "alice").await;
    let (_alice, mut events) = connect_with_events(&stack.server.url(), options).await?;
    events.wait_for("User Authentication Expired").await?;
    // The server's -ERR reached the client: the JWT's expiry was enforced.
    Ok(())
}

#[tokio::test]
async fn the_server_refuses_accounts_outside_allowed_accounts() -> anyhow::Result<()> {
    let app1 = std::cell::OnceCell::new();
    let stack = OperatorStack::start_with(
        true,
        |dir| {
            let token = std::fs::read_to_string(dir.join("accounts/APP1.jwt"))?;
            let _ = app1.set(portcullis_protocol::accounts::decode_account(token.trim())?.sub);
            portcullis_tests::rewrite_account(dir, "AUTH", |auth| {
                let authorization = auth.authorization.as_mut().expect("AUTH delegates");
                authorization.allowed_accounts = vec![app1.get().expect("APP1").clone()];
            })
        },
        |_| {},
    )
    .await?;
    // The host signs bob into APP2 (the plugin may), the server refuses it.
    let mark = stack.server.log_mark();
    expect_refused(stack.login("bob", "bob"))
        .await
        .map_err(|e| e.context("APP2 is not allowed by AUTH"))?;
    stack
        .server
        .wait_for_log_since(
            mark,
            "not permitted as valid account option for auth callout",
        )
        .await?;
    stack.login("alice", "alice").await?;
    Ok(())
}

#[tokio::test]
async fn a_scoped_signing_key_takes_its_permissions_from_the_template() -> anyhow::Result<()> {
    let stack = OperatorStack::start_with(
        true,
        |dir| {
            let users: serde_json::Value = serde_json::from_str(&portcullis_tests::users_json())?;
            let mut users = users.as_object().cloned().unwrap_or_default();
            users.insert(
                "carol".into(),
                serde_json::json!({"pass": "carol", "account": "APP1", "permissions": {"pub": {"allow": ["carol.>"]}}}),
            );
            std::fs::write(dir.join("users.json"), serde_json::to_string(&users)?)?;
            portcullis_tests::rewrite_account(dir, "APP1", |app1| {
                let key = app1.signing_keys[0].key().to_owned();
                app1.signing_keys = vec![portcullis_protocol::accounts::SigningKey::Scoped {
                    kind: "user_scope".into(),
                    key,
                    role: "app1".into(),
                    template: serde_json::json!({
                        "pub": {"allow": ["app1.>", "$SYS.REQ.USER.INFO"]},
                        "sub": {"allow": ["app1.>", "_INBOX.>"]},
                        "subs": -1, "data": -1, "payload": -1
                    }),
                }];
            })
        },
        |config| config.accounts.get_mut("APP1").expect("APP1").scoped = true,
    )
    .await?;

    // alice asks for no permissions: the template's apply.
    let alice = stack.login("alice", "alice").await?;
    let info = user_info(&alice).await?;
    assert_eq!(info["account"], stack.account("APP1")?, "{info}");
    let publish = info["permissions"]["publish"]["allow"].to_string();
    assert!(publish.contains("app1.>"), "{info}");

    // carol's grant carries permissions, which a scoped key cannot sign.
    let mark = stack.server.log_mark();
    expect_refused(stack.login("carol", "carol"))
        .await
        .map_err(|e| e.context("refused"))?;
    stack
        .server
        .wait_for_log_since(mark, "uses a scoped signing key")
        .await?;
    Ok(())
}
