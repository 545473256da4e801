//! NKey challenge-response through the callout: real async-nats clients
//! sign the nonce of a real nats-server with their seed, and the nkeys
//! plugin checks the signature with the host's verify-nkey-signature.

use nkeys::KeyPair;
use portcullis_tests::{Deployment, Stack, WAIT, expect_refused, user_info};

/// The nkeys plugin table, with its user map in nkeys.json.
fn nkeys_plugin(deployment: &Deployment, users: serde_json::Value) -> anyhow::Result<String> {
    std::fs::write(
        deployment.dir.path().join("nkeys.json"),
        serde_json::json!({ "users": users }).to_string(),
    )?;
    Ok(format!(
        r#"
[[plugins]]
name = "nkeys"
wasm = "{}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
config_file = "nkeys.json"
"#,
        portcullis_tests::plugin("nkeys_auth").display()
    ))
}

/// A stack whose server sends nonces (Portcullis logs in with an NKey)
/// and whose nkeys plugin knows `sensor`.
async fn stack(sensor: &KeyPair) -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?.with_auth_nkey()?;
    let plugins = nkeys_plugin(
        &deployment,
        serde_json::json!({
            sensor.public_key(): {
                "account": "APP2",
                "name": "sensor-7",
                "permissions": {
                    "pub": { "allow": ["sensors.{nkey}.>", "$SYS.REQ.USER.INFO"] },
                    "sub": { "allow": ["_INBOX.>"] }
                }
            }
        }),
    )?;
    Stack::with_plugins(deployment, &plugins).await
}

async fn refused(
    stack: &Stack,
    options: async_nats::ConnectOptions,
    reason: &str,
) -> anyhow::Result<()> {
    let mark = stack.server.log_mark();
    expect_refused(options.connection_timeout(WAIT).connect(stack.server.url()))
        .await
        .map_err(|e| e.context("login must be refused"))?;
    stack.server.wait_for_log_since(mark, reason).await?;
    Ok(())
}

#[tokio::test]
async fn the_right_key_is_admitted_into_its_account() -> anyhow::Result<()> {
    let sensor = KeyPair::new_user();
    let stack = stack(&sensor).await?;
    let client = async_nats::ConnectOptions::with_nkey(sensor.seed()?)
        .connection_timeout(WAIT)
        .connect(stack.server.url())
        .await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    assert_eq!(
        info["user"], "sensor-7",
        "display name from the grant: {info}"
    );
    let allowed = info["permissions"]["publish"]["allow"].to_string();
    assert!(
        allowed.contains(&format!("sensors.{}.>", sensor.public_key())),
        "{info}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_key_is_refused() -> anyhow::Result<()> {
    let stack = stack(&KeyPair::new_user()).await?;
    let stranger = KeyPair::new_user();
    refused(
        &stack,
        async_nats::ConnectOptions::with_nkey(stranger.seed()?),
        &format!(
            "denied by plugin nkeys: unknown nkey {}",
            stranger.public_key()
        ),
    )
    .await
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() -> anyhow::Result<()> {
    let sensor = KeyPair::new_user();
    let stack = stack(&sensor).await?;
    // A real client that claims the sensor's public key but signs the
    // server's nonce with a key of its own.
    let claimed = sensor.public_key();
    let options = async_nats::ConnectOptions::with_auth_callback(move |nonce| {
        let claimed = claimed.clone();
        async move {
            let forger = KeyPair::new_user();
            let mut auth = async_nats::Auth::new();
            auth.nkey = Some(claimed);
            auth.signature = Some(forger.sign(&nonce).map_err(async_nats::AuthError::new)?);
            Ok(auth)
        }
    });
    refused(
        &stack,
        options,
        &format!(
            "denied by plugin nkeys: signature of nkey {} does not verify",
            sensor.public_key()
        ),
    )
    .await?;

    // The same client signing with the right key gets in: the refusal was
    // about the signature alone.
    let seed = sensor.seed()?;
    let honest = async_nats::ConnectOptions::with_auth_callback(move |nonce| {
        let seed = seed.clone();
        async move {
            let key = KeyPair::from_seed(&seed).map_err(async_nats::AuthError::new)?;
            let mut auth = async_nats::Auth::new();
            auth.nkey = Some(key.public_key());
            auth.signature = Some(key.sign(&nonce).map_err(async_nats::AuthError::new)?);
            Ok(auth)
        }
    })
    .connection_timeout(WAIT)
    .connect(stack.server.url())
    .await?;
    assert_eq!(user_info(&honest).await?["account"], "APP2");
    Ok(())
}

#[tokio::test]
async fn without_a_server_nonce_nkey_logins_are_refused() -> anyhow::Result<()> {
    // Portcullis logs in with a password: the server knows no NKey user,
    // sends no nonce, and the client signs nothing. The plugin must not
    // take a signature over an empty nonce as proof.
    let sensor = KeyPair::new_user();
    let deployment = Deployment::new(false)?;
    let plugins = nkeys_plugin(
        &deployment,
        serde_json::json!({ sensor.public_key(): { "account": "APP1" } }),
    )?;
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    refused(
        &stack,
        async_nats::ConnectOptions::with_nkey(sensor.seed()?),
        "denied by plugin nkeys: the server sent no nonce to sign",
    )
    .await
}
