//! The quick-start demo's client: logs in as the nats-by-example users and
//! shows what the server made of each login.

use futures::StreamExt;
use std::time::Duration;

async fn login(
    url: &str,
    user: &str,
    pass: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

async fn whoami(client: &async_nats::Client) -> String {
    match client.request("$SYS.REQ.USER.INFO", "".into()).await {
        Ok(reply) => {
            let info: serde_json::Value =
                serde_json::from_slice(&reply.payload).unwrap_or_default();
            let data = &info["data"];
            match &data["permissions"] {
                serde_json::Value::Null => format!("account {}, no restrictions", data["account"]),
                perms => format!("account {}, permissions {perms}", data["account"]),
            }
        }
        Err(e) => format!("(cannot ask the server: {e})"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());

    let alice = login(&url, "alice", "alice").await?;
    println!("alice/alice   -> connected: {}", whoami(&alice).await);

    let bob = login(&url, "bob", "bob").await?;
    let mut sub = bob.subscribe("bob.greeting").await?;
    bob.publish("bob.greeting", "hello".into()).await?;
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await?;
    println!(
        "bob/bob       -> connected into APP2, limited to bob.>: published and received {:?} on bob.greeting",
        got.map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .unwrap_or_default()
    );

    match login(&url, "alice", "wrong").await {
        Ok(_) => anyhow::bail!("a wrong password was accepted"),
        Err(e) => println!("alice/wrong   -> refused: {e}"),
    }
    match login(&url, "mallory", "x").await {
        Ok(_) => anyhow::bail!("an unknown user was accepted"),
        Err(e) => println!("mallory/x     -> refused: {e}"),
    }
    Ok(())
}
