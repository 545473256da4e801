//! Connecting the way clients do, and asking the server what it made of a
//! connection: the tests judge the host by what clients see.

use crate::WAIT;
use anyhow::{Context, Result, bail};
use async_nats::{ConnectError, ConnectErrorKind};
use std::future::Future;
use std::time::{Duration, Instant};

/// How soon a refusal must arrive: half the auth timeout the harness gives
/// nats-server (`authorization.timeout` 10 s in `Deployment::server_config`).
/// A refusal within this was the host's signed answer; one near the timeout
/// would be the server giving up on a host that never answered. This is a
/// correctness bound, far above what a loaded machine needs, not a benchmark.
pub const REFUSED_WITHIN: Duration = Duration::from_secs(5);

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

/// Whether the login `connect` performs was admitted (`true`) or refused by
/// an answer (`false`); anything else is an error.
///
/// Refused means nats-server sent `-ERR 'Authorization Violation'`
/// (`ConnectErrorKind::AuthorizationViolation`) within [`REFUSED_WITHIN`]:
/// a bare connect error could be a timeout, a closed socket or a TLS
/// failure, none of which shows the host decided. Admitted means a round
/// trip after the connect succeeded: async-nats takes any first server
/// operation after CONNECT as success, so connect() alone is not proof.
pub async fn admitted<F>(connect: F) -> Result<bool>
where
    F: Future<Output = Result<async_nats::Client, ConnectError>>,
{
    let started = Instant::now();
    match connect.await {
        Ok(client) => {
            tokio::time::timeout(WAIT, client.flush())
                .await
                .context("connected, but no round trip within WAIT")?
                .context("connected, but the round trip failed")?;
            Ok(true)
        }
        Err(e) => {
            refused_by_an_answer(&e, started.elapsed())?;
            Ok(false)
        }
    }
}

/// Expect the login `connect` performs to be refused by an answer (see
/// [`admitted`]); returns the error, for tests that look at it further.
pub async fn expect_refused<F>(connect: F) -> Result<ConnectError>
where
    F: Future<Output = Result<async_nats::Client, ConnectError>>,
{
    let started = Instant::now();
    let result = connect.await;
    let took = started.elapsed();
    let err = match result {
        Ok(client) => {
            // A refused CONNECT may still reach us as Ok (see `admitted`);
            // only a round trip tells, and either way this is not a refusal.
            let flushed = tokio::time::timeout(WAIT, client.flush()).await;
            let connects = client
                .statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed);
            bail!(
                "the login was not refused after {took:?} (round trip after connect: \
                 {flushed:?}; connections made: {connects}, more than one means the \
                 first was dropped after the client took it as made)"
            )
        }
        Err(e) => e,
    };
    refused_by_an_answer(&err, took)?;
    eprintln!("refused in {took:?}");
    Ok(err)
}

/// A connect error that is the server passing on a refusal: an
/// authorization violation, well before the auth timeout.
fn refused_by_an_answer(err: &ConnectError, took: Duration) -> Result<()> {
    anyhow::ensure!(
        err.kind() == ConnectErrorKind::AuthorizationViolation,
        "the login failed without an authorization violation after {took:?}: {err} ({:?})",
        err.kind()
    );
    anyhow::ensure!(
        took < REFUSED_WITHIN,
        "refused only after {took:?}, not within {REFUSED_WITHIN:?}: an answer is prompt"
    );
    Ok(())
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
