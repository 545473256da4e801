//! The NATS side: connect, subscribe to `$SYS.REQ.USER.AUTH` in a queue
//! group, answer each request on its own task with a bound on requests in
//! flight, and on shutdown drain: stop taking requests, answer those
//! already received, then close.
//!
//! Back-pressure answers rather than queues: a request that arrives while
//! `max_in_flight` are being decided gets a signed error at once, so the
//! server refuses that client immediately (it may retry, possibly on
//! another host) instead of holding it until its auth timeout.

use crate::callout::{Callout, HandleError};
use crate::config::Config;
use futures::StreamExt;
use portcullis_protocol::keys;
use portcullis_protocol::logsafe::Escaped;
use portcullis_protocol::{CALLOUT_SUBJECT, SERVER_XKEY_HEADER};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How long shutdown waits for requests in flight before it gives up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot connect to NATS at {servers}: {message}")]
    Connect { servers: String, message: String },
    #[error("cannot read NATS credentials: {0}")]
    Credentials(String),
    #[error("cannot subscribe to {CALLOUT_SUBJECT}: {0}")]
    Subscribe(String),
}

/// Connect to NATS as the callout user, as `[nats]` of `config` says.
pub async fn connect(config: &Config) -> Result<async_nats::Client, ServiceError> {
    let nats = &config.nats;
    let mut options = match (&nats.creds, &config.nats_nkey_seed()) {
        (Some(path), _) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| ServiceError::Credentials(format!("{}: {e}", path.display())))?,
        (None, Some(source)) => {
            let kp =
                keys::user_key(source).map_err(|e| ServiceError::Credentials(e.to_string()))?;
            let seed = kp
                .seed()
                .map_err(|e| ServiceError::Credentials(e.to_string()))?;
            async_nats::ConnectOptions::with_nkey(seed)
        }
        (None, None) => async_nats::ConnectOptions::new(),
    };
    if let (Some(user), Some(pass)) = (&nats.user, &nats.password) {
        options = options.user_and_password(user.clone(), pass.clone());
    }
    if let Some(token) = &nats.token {
        options = options.token(token.clone());
    }
    if let Some(tls) = &nats.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let servers = nats
        .servers
        .iter()
        .map(|s| redact_url(s))
        .collect::<Vec<_>>()
        .join(",");
    options
        .name(&nats.name)
        .connect(nats.servers.as_slice())
        .await
        .map_err(|e| ServiceError::Connect {
            servers,
            message: e.to_string(),
        })
}

/// A server URL without the user:password some operators put in it, for
/// messages and logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Serve requests until `shutdown` resolves, then drain. `ready` fires once
/// the server has our subscription, so logins from then on are answered.
pub async fn serve(
    client: async_nats::Client,
    queue: &str,
    max_in_flight: usize,
    callout: Arc<Callout>,
    shutdown: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), ServiceError> {
    let mut subscriber = client
        .queue_subscribe(CALLOUT_SUBJECT, queue.to_owned())
        .await
        .map_err(|e| ServiceError::Subscribe(e.to_string()))?;
    client
        .flush()
        .await
        .map_err(|e| ServiceError::Subscribe(e.to_string()))?;
    tracing::info!(
        subject = CALLOUT_SUBJECT,
        queue,
        "serving authorization requests"
    );
    let serving = &callout.metrics().service.ready;
    serving.store(true, Ordering::Relaxed);
    if let Some(ready) = ready {
        let _ = ready.send(());
    }

    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            m = subscriber.next() => m,
        };
        let Some(message) = message else {
            tracing::warn!("subscription closed by the connection");
            break;
        };
        dispatch(&client, &callout, &permits, &mut tasks, message).await;
        while tasks.try_join_next().is_some() {}
    }

    // Drain: unsubscribe, answer what the server already sent us, wait for
    // the answers to go out. Not ready from here on, so an orchestrator
    // stops counting on this host while it finishes.
    serving.store(false, Ordering::Relaxed);
    tracing::info!(in_flight = tasks.len(), "shutting down: draining");
    let drain = async {
        if let Err(e) = subscriber.drain().await {
            tracing::warn!(error = %e, "cannot drain subscription");
        }
        while let Some(message) = subscriber.next().await {
            dispatch(&client, &callout, &permits, &mut tasks, message).await;
        }
        while tasks.join_next().await.is_some() {}
        if let Err(e) = client.flush().await {
            tracing::warn!(error = %e, "cannot flush responses");
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::error!(timeout = ?DRAIN_TIMEOUT, "drain timed out; requests still in flight are dropped");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Counts a request in flight until dropped, however its task ends.
struct InFlight(Arc<Callout>);

impl InFlight {
    fn new(callout: &Arc<Callout>) -> Self {
        callout
            .metrics()
            .service
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        InFlight(callout.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .metrics()
            .service
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn dispatch(
    client: &async_nats::Client,
    callout: &Arc<Callout>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    message: async_nats::Message,
) {
    let in_flight = InFlight::new(callout);
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        // Saturated: verifying and signing a refusal costs microseconds,
        // done here so it needs no task and no permit.
        let reason = format!(
            "callout service saturated: {} requests in flight, try again",
            callout.metrics().service.in_flight.load(Ordering::Relaxed) - 1
        );
        answer(client, callout, message, Some(&reason)).await;
        return;
    };
    let client = client.clone();
    let callout = callout.clone();
    tasks.spawn(async move {
        let _permit = permit;
        let _in_flight = in_flight;
        answer(&client, &callout, message, None).await;
    });
}

/// Decide (or, with `refusal`, refuse) one request and publish the answer.
async fn answer(
    client: &async_nats::Client,
    callout: &Callout,
    message: async_nats::Message,
    refusal: Option<&str>,
) {
    let Some(reply) = message.reply.clone() else {
        tracing::warn!("authorization request without a reply subject ignored");
        return;
    };
    let server_xkey = message
        .headers
        .as_ref()
        .and_then(|h| h.get(SERVER_XKEY_HEADER))
        .map(|v| v.as_str());
    let answered = match refusal {
        None => callout.handle(server_xkey, &message.payload).await,
        Some(reason) => callout.refuse(server_xkey, &message.payload, reason).await,
    };
    match answered {
        Ok(answer) => match client.publish(reply, answer.into()).await {
            Ok(()) => {
                callout
                    .metrics()
                    .service
                    .answered
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "cannot send authorization response"),
        },
        // Whoever published the request chose what its error quotes (an
        // audience, a header value).
        Err(HandleError::Request(e)) => {
            tracing::warn!(error = %Escaped(&e), "authorization request ignored: it does not verify");
        }
        Err(e) => tracing::error!(error = %Escaped(&e), "cannot answer authorization request"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_server_urls_are_not_repeated() {
        use super::redact_url;
        assert_eq!(
            redact_url("nats://auth:s3cret@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        assert_eq!(redact_url("tls://token@host:4222"), "tls://***@host:4222");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
