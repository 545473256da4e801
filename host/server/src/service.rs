//! The NATS side: connect, subscribe to `$SYS.REQ.USER.AUTH` in a queue
//! group, answer each request on its own task with a bound on requests in
//! flight, and on shutdown drain: stop taking requests, answer those
//! already received, then close.
//!
//! Back-pressure answers rather than queues: a request that arrives while
//! `max_in_flight` are being decided gets a signed error at once, so the
//! server refuses that client immediately (it may retry, possibly on
//! another host) instead of holding it until its auth timeout.

use crate::callout::Callout;
use crate::config::Config;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use portcullis_protocol::ResponseError;
use portcullis_protocol::keys;
use portcullis_protocol::logsafe::Escaped;
use portcullis_protocol::time::unix_now;
use portcullis_protocol::{CALLOUT_SUBJECT, SERVER_XKEY_HEADER};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How long shutdown waits for requests in flight before it gives up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot connect to NATS at {servers}: {message}")]
    Connect { servers: String, message: String },
    #[error(
        "cannot connect to NATS at {servers} within [nats] connect_timeout = {}, \
         {attempts} attempts; the last: {message}",
        humantime::format_duration(*timeout)
    )]
    ConnectTimeout {
        servers: String,
        timeout: Duration,
        attempts: u32,
        message: String,
    },
    #[error("cannot read NATS credentials: {0}")]
    Credentials(String),
    #[error("cannot subscribe to {CALLOUT_SUBJECT}: {0}")]
    Subscribe(String),
}

/// The wait before the second attempt to reach NATS at start; it doubles
/// after each failure up to [`MAX_RETRY_DELAY`].
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The longest wait between attempts to reach NATS at start: a server that
/// comes up is found within this, and a host waiting for a server that is
/// down for long costs one attempt (and one log line) per interval.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Connect to NATS as the callout user, as `[nats]` of `config` says: one
/// attempt, for commands that should say at once that NATS is not there.
pub async fn connect(config: &Config) -> Result<async_nats::Client, ServiceError> {
    let options = options(config).await?;
    let servers = servers(config);
    attempt(config, options)
        .await
        .map_err(|e| ServiceError::Connect {
            servers,
            message: Escaped(&e).to_string(),
        })
}

/// [`connect`] for `run`: until NATS answers, retried with a jittered
/// backoff (each failed attempt logged), or until `[nats] connect_timeout`.
/// A refused login, a bad TLS setup or a malformed URL fails at once:
/// retrying cannot fix the configuration. Once connected, the client
/// reconnects by itself whenever the connection drops.
pub async fn connect_waiting(config: &Config) -> Result<async_nats::Client, ServiceError> {
    let options = options(config).await?;
    let servers = servers(config);
    let started = tokio::time::Instant::now();
    let deadline = config.nats.connect_timeout.map(|t| (started + t, t));
    let mut delay = FIRST_RETRY_DELAY;
    let mut last = None;
    let mut attempts = 0u32;
    loop {
        attempts = attempts.saturating_add(1);
        let tried = match deadline {
            Some((deadline, _)) => {
                tokio::time::timeout_at(deadline, attempt(config, options.clone()))
                    .await
                    .ok()
            }
            None => Some(attempt(config, options.clone()).await),
        };
        match tried {
            Some(Ok(client)) => {
                if attempts > 1 {
                    tracing::info!(
                        servers = %servers,
                        attempts,
                        waited = ?started.elapsed(),
                        "connected to NATS"
                    );
                }
                return Ok(client);
            }
            Some(Err(error)) => {
                let message = Escaped(&error).to_string();
                if !retryable(&error) {
                    return Err(ServiceError::Connect { servers, message });
                }
                last = Some(message);
            }
            // Cut short by the deadline: the previous cause stands.
            None => {}
        }
        let now = tokio::time::Instant::now();
        let wait = jittered(delay, attempts);
        let mut until = now + wait;
        if let Some((deadline, timeout)) = deadline {
            if now >= deadline {
                return Err(ServiceError::ConnectTimeout {
                    servers,
                    timeout,
                    attempts,
                    message: last.unwrap_or_else(|| "no answer in time".into()),
                });
            }
            until = until.min(deadline);
        }
        tracing::warn!(
            servers = %servers,
            attempt = attempts,
            retry_in = ?until - now,
            error = last.as_deref().unwrap_or("no answer in time"),
            "cannot connect to NATS yet; retrying"
        );
        tokio::time::sleep_until(until).await;
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// Whether another attempt may succeed: the server was not there (yet), not
/// that it refused us or that our own setup is wrong.
fn retryable(error: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind as Kind;
    match error.kind() {
        Kind::Io | Kind::Dns | Kind::TimedOut | Kind::MaxReconnects => true,
        Kind::ServerParse | Kind::Authentication | Kind::AuthorizationViolation | Kind::Tls => {
            false
        }
    }
}

/// `delay` scaled by a random factor in [0.5, 1.0), so hosts started
/// together do not knock on a restarting server in step.
fn jittered(delay: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    delay.mul_f64(0.5 + fraction / 2.0)
}

/// The configured server URLs, without credentials, for messages and logs.
fn servers(config: &Config) -> String {
    config
        .nats
        .servers
        .iter()
        .map(|s| redact_url(s))
        .collect::<Vec<_>>()
        .join(",")
}

/// One pass over the configured servers.
async fn attempt(
    config: &Config,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    options.connect(config.nats.servers.as_slice()).await
}

/// The client options `[nats]` of `config` describes: login, TLS, name.
async fn options(config: &Config) -> Result<async_nats::ConnectOptions, ServiceError> {
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
        options = options.user_and_password(user.clone(), pass.expose().to_owned());
    }
    if let Some(token) = &nats.token {
        options = options.token(token.expose().to_owned());
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
    Ok(options.name(&nats.name))
}

/// A server URL without the user:password some operators put in it, for
/// messages and logs.
pub fn redact_url(url: &str) -> String {
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
    let service = &callout.metrics().service;
    // The first connection stays the one this host answers on: a reload
    // never reconnects, and async-nats reconnects the same client.
    let _ = service.connection.set(client.clone());
    let serving = &service.ready;
    serving.store(true, Ordering::Relaxed);
    if let Some(ready) = ready {
        let _ = ready.send(());
    }

    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let mut batch = Vec::with_capacity(MAX_BATCH);
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
        batch.push(message);
        let closed = take_ready(&mut subscriber, &mut batch);
        dispatch(&client, &callout, &permits, &mut tasks, &mut batch).await;
        while tasks.try_join_next().is_some() {}
        if closed {
            tracing::warn!("subscription closed by the connection");
            break;
        }
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
            batch.push(message);
            take_ready(&mut subscriber, &mut batch);
            dispatch(&client, &callout, &permits, &mut tasks, &mut batch).await;
        }
        while tasks.join_next().await.is_some() {}
        if let Err(e) = client.flush().await {
            tracing::warn!(error = %e, "cannot flush responses");
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::error!(timeout = ?DRAIN_TIMEOUT, "drain timed out; requests still in flight are dropped");
    }
    let metrics = callout.metrics();
    tracing::info!(
        answered = metrics.service.answered.load(Ordering::Relaxed),
        requests_rejected = metrics.rejected.get(),
        signature_batches = metrics.signature_batches.get(),
        requests_in_signature_batches = metrics.requests_in_batches.get(),
        "stopped"
    );
    Ok(())
}

/// The most requests whose signatures are verified in one batch. The
/// saving per signature levels off beyond it (a batch of 8 costs 59% of
/// single checks per signature, one of 16 55%), while every request of a
/// batch waits for the whole batch.
pub const MAX_BATCH: usize = 16;

/// Add to `batch` the requests that have already arrived, without waiting
/// for more, up to [`MAX_BATCH`]. True when the subscription has ended.
fn take_ready(
    subscriber: &mut async_nats::Subscriber,
    batch: &mut Vec<async_nats::Message>,
) -> bool {
    use futures::FutureExt as _;
    while batch.len() < MAX_BATCH {
        match subscriber.next().now_or_never() {
            Some(Some(message)) => batch.push(message),
            Some(None) => return true,
            None => break,
        }
    }
    false
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

/// Verify the requests that arrived together in one batch, then answer
/// the verified ones on one task, or each at once with a refusal when
/// `max_in_flight` are being decided. Empties `batch`.
async fn dispatch(
    client: &async_nats::Client,
    callout: &Arc<Callout>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    batch: &mut Vec<async_nats::Message>,
) {
    let started = Instant::now();
    let now = unix_now();
    let verified = callout.verify_all(
        batch.iter().map(|m| {
            let server_xkey = m
                .headers
                .as_ref()
                .and_then(|h| h.get(SERVER_XKEY_HEADER))
                .map(|v| v.as_str());
            (&m.payload[..], server_xkey)
        }),
        now,
    );
    let mut work = Vec::with_capacity(batch.len());
    for (message, verified) in batch.drain(..).zip(verified) {
        let Some(reply) = message.reply else {
            tracing::warn!("authorization request without a reply subject ignored");
            continue;
        };
        let verified = match verified {
            Ok(v) => v,
            // Whoever published the request chose what its error quotes
            // (an audience, a header value).
            Err(e) => {
                tracing::warn!(error = %Escaped(&e), "authorization request ignored: it does not verify");
                continue;
            }
        };
        let in_flight = InFlight::new(callout);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Saturated: signing a refusal costs microseconds, done here so
            // it needs no task and no permit.
            let reason = format!(
                "callout service saturated: {} requests in flight, try again",
                callout.metrics().service.in_flight.load(Ordering::Relaxed) - 1
            );
            let answer = callout
                .answer_verified(verified, Some(&reason), started, now)
                .await;
            publish(client, callout, reply, answer).await;
            continue;
        };
        work.push((permit, in_flight, reply, verified));
    }
    if work.is_empty() {
        return;
    }
    // One task per batch, its requests decided concurrently within it:
    // answers that are ready together are published together, so the
    // connection task writes them in one system call, and a batch costs
    // one task wake-up instead of one per request. A slow plugin still
    // yields (epoch ticks) to the others of its batch.
    let client = client.clone();
    let callout = callout.clone();
    // Their audit lines, like their answers, go out in one system call.
    tasks.spawn(crate::logline::one_write_per_poll(async move {
        let callout = &callout;
        let mut answers: FuturesUnordered<_> = work
            .into_iter()
            .map(|(permit, in_flight, reply, verified)| async move {
                let answer = callout.answer_verified(verified, None, started, now).await;
                (permit, in_flight, reply, answer)
            })
            .collect();
        while let Some((permit, in_flight, reply, answer)) = answers.next().await {
            publish(&client, callout, reply, answer).await;
            drop((permit, in_flight));
        }
    }));
}

/// Send the answer to one request.
async fn publish(
    client: &async_nats::Client,
    callout: &Callout,
    reply: async_nats::Subject,
    answer: Result<Vec<u8>, ResponseError>,
) {
    match answer {
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

    #[test]
    fn retries_wait_between_half_and_all_of_the_backoff() {
        use super::{FIRST_RETRY_DELAY, MAX_RETRY_DELAY, jittered};
        for attempt in 0..1000 {
            for delay in [FIRST_RETRY_DELAY, MAX_RETRY_DELAY] {
                let wait = jittered(delay, attempt);
                assert!(wait >= delay / 2 && wait < delay, "{wait:?} for {delay:?}");
            }
        }
    }

    #[test]
    fn only_an_absent_server_is_retried_not_a_refused_login_or_a_bad_setup() {
        use super::retryable;
        use async_nats::{ConnectError, ConnectErrorKind as Kind};
        for kind in [Kind::Io, Kind::Dns, Kind::TimedOut] {
            assert!(retryable(&ConnectError::new(kind)), "{kind:?}");
        }
        for kind in [
            Kind::AuthorizationViolation,
            Kind::Authentication,
            Kind::Tls,
            Kind::ServerParse,
        ] {
            assert!(!retryable(&ConnectError::new(kind)), "{kind:?}");
        }
    }
}
