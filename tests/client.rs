//! Connecting the way clients do, and asking the server what it made of a
//! connection: the tests judge the host by what clients see.

use crate::WAIT;
use anyhow::{Context, Result, bail};

/// Connect to `url` as `user`/`pass`, without retries.
pub async fn login(
    url: &str,
    user: &str,
    pass: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .connection_timeout(WAIT)
        .connect(url)
        .await
}

/// Connect with `options`, collecting the client's events (server errors,
/// disconnects) as text.
pub async fn connect_with_events(
    url: &str,
    options: async_nats::ConnectOptions,
) -> Result<(async_nats::Client, Events), async_nats::ConnectError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = options
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.to_string());
            }
        })
        .connect(url)
        .await?;
    Ok((client, Events(rx)))
}

/// A client's events, as text.
pub struct Events(tokio::sync::mpsc::UnboundedReceiver<String>);

impl Events {
    /// Wait (up to `WAIT`) for an event containing `needle`.
    pub async fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.0.recv()).await {
                Ok(Some(event)) if event.contains(needle) => return Ok(event),
                Ok(Some(_)) => continue,
                Ok(None) => bail!("client closed before an event with {needle:?}"),
                Err(_) => bail!("no event with {needle:?} within {WAIT:?}"),
            }
        }
    }
}

/// What `$SYS.REQ.USER.INFO` says about a connection.
pub async fn user_info(client: &async_nats::Client) -> Result<serde_json::Value> {
    let reply = tokio::time::timeout(WAIT, client.request("$SYS.REQ.USER.INFO", "".into()))
        .await
        .context("USER.INFO timed out")??;
    let value: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    Ok(value["data"].clone())
}
