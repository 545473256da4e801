//! Calls abandoned at their deadline, with the `hostile` fixture (built by
//! scripts/build-plugins): a plugin blocked in a host call is stopped all
//! the same, and neither its instance nor its permit outlives the call.

use super::*;
use crate::bindings::portcullis::authenticator::types::{ClientInfo, ConnectOptions, ServerInfo};
use crate::bindings::{AuthRequest, Decision};
use crate::{LogDropped, Runtime, RuntimeOptions};
use std::sync::LazyLock;

/// Slack for timers and scheduling on a busy 2-core machine: a call must
/// end within its deadline plus this.
const MARGIN: Duration = Duration::from_millis(300);

static HOSTILE: LazyLock<crate::Prepared> = LazyLock::new(|| {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release/hostile.wasm");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-plugins)", path.display()));
    let runtime = Runtime::new(&RuntimeOptions {
        pool_instances: Some(16),
        max_memory_bytes: 32 << 20,
        ..Default::default()
    })
    .expect("runtime");
    runtime.prepare(&bytes).expect("hostile.wasm loads")
});

fn limits(timeout_ms: u64) -> PluginLimits {
    let timeout = Duration::from_millis(timeout_ms);
    PluginLimits {
        timeout,
        configure_timeout: timeout * 2,
        memory_bytes: 32 << 20,
        max_concurrency: 1,
        queue_timeout: timeout,
        log: LogLimits::default(),
    }
}

async fn hostile(attack: &str, limits: PluginLimits) -> Result<Plugin, CallError> {
    let config = format!(r#"{{"attack": "{attack}", "user": "mallory"}}"#);
    Plugin::new("hostile", HOSTILE.clone(), limits, config, None).await
}

/// Lines the log filter discards spend no budget: the flood tests need
/// someone listening at `info` (on this thread, where the calls run).
fn listen_at_info() -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

/// A `log-flood` plugin writing `lines` lines per login, and what its
/// drop hook heard.
async fn flooder(lines: u32, log: LogLimits) -> (Plugin, Arc<Mutex<Vec<(String, LogDropped)>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let hook: LogDropHook = Arc::new(move |plugin: &str, dropped| {
        sink.lock().unwrap().push((plugin.to_owned(), dropped));
    });
    let config = format!(r#"{{"attack": "log-flood", "user": "mallory", "flood_lines": {lines}}}"#);
    let limits = PluginLimits {
        log,
        ..limits(5_000)
    };
    let plugin = Plugin::new("flooder", HOSTILE.clone(), limits, config, Some(hook))
        .await
        .unwrap();
    (plugin, heard)
}

fn request(user: &str) -> AuthRequest {
    AuthRequest {
        server: ServerInfo {
            name: "test".into(),
            host: String::new(),
            id: String::new(),
            version: String::new(),
            cluster: String::new(),
            tags: Vec::new(),
        },
        user_nkey: String::new(),
        client: ClientInfo {
            host: "127.0.0.1".into(),
            id: 1,
            user: String::new(),
            name: String::new(),
            tags: Vec::new(),
            name_tag: String::new(),
            kind: "Client".into(),
            connection_type: "STANDARD".into(),
            mqtt_id: String::new(),
            nonce: String::new(),
        },
        connect: ConnectOptions {
            user: Some(user.into()),
            pass: Some("x".into()),
            token: None,
            jwt: None,
            nkey: None,
            sig: None,
            name: None,
            lang: None,
            version: None,
            protocol: 1,
        },
        tls: None,
    }
}

fn idle(plugin: &Plugin) -> usize {
    plugin.idle.lock().unwrap().len()
}

#[tokio::test]
async fn a_sleep_in_authenticate_is_abandoned_at_the_deadline() {
    let plugin = hostile("sleep", limits(100)).await.unwrap();
    assert_eq!(idle(&plugin), 1);
    let started = Instant::now();
    let result = plugin.authenticate(&request("mallory")).await;
    let took = started.elapsed();
    assert_eq!(
        result.err(),
        Some(CallError::Timeout(Duration::from_millis(100)))
    );
    assert!(took < Duration::from_millis(100) + MARGIN, "{took:?}");
    assert_eq!(idle(&plugin), 0, "the abandoned instance is not pooled");
    // The one permit is back: the next login gets a fresh instance.
    let next = plugin.authenticate(&request("alice")).await;
    assert!(matches!(next, Ok(Decision::Abstain)), "{next:?}");
    assert_eq!(idle(&plugin), 1);
}

#[tokio::test]
async fn a_caller_that_drops_the_call_releases_its_permit() {
    let plugin = hostile("sleep", limits(5_000)).await.unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        plugin.authenticate(&request("mallory")),
    )
    .await;
    assert!(gave_up.is_err(), "the sleep outlasts the caller");
    assert_eq!(idle(&plugin), 0, "the abandoned instance is not pooled");
    // With one permit, a leaked one would make this wait and fail as busy.
    let started = Instant::now();
    let next = plugin.authenticate(&request("alice")).await;
    assert!(matches!(next, Ok(Decision::Abstain)), "{next:?}");
    assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_sleep_in_configure_is_abandoned_at_the_deadline() {
    let started = Instant::now();
    let result = hostile("configure-sleep", limits(100)).await;
    let took = started.elapsed();
    assert_eq!(
        result.err(),
        Some(CallError::Timeout(Duration::from_millis(200)))
    );
    assert!(took < Duration::from_millis(200) + MARGIN, "{took:?}");
}

#[tokio::test]
async fn a_busy_loop_is_still_stopped_by_the_epoch() {
    let plugin = hostile("busy-loop", limits(100)).await.unwrap();
    assert_stopped_at_100ms(&plugin).await;
}

/// `plugin` (the busy loop, 100 ms limit) is abandoned at its deadline.
async fn assert_stopped_at_100ms(plugin: &Plugin) {
    let started = Instant::now();
    let result = plugin.authenticate(&request("mallory")).await;
    assert_eq!(
        result.err(),
        Some(CallError::Timeout(Duration::from_millis(100)))
    );
    assert!(
        started.elapsed() < Duration::from_millis(100) + MARGIN,
        "{:?}",
        started.elapsed()
    );
}

/// The epoch thread parks on an idle host; the call that comes next must
/// wake it, or a busy loop would never meet its deadline.
#[tokio::test]
async fn a_busy_loop_after_an_idle_spell_is_still_stopped() {
    let plugin = hostile("busy-loop", limits(100)).await.unwrap();
    let until = Instant::now() + crate::epoch::LINGER + Duration::from_secs(10);
    while !plugin.pre.ticker.parked() {
        assert!(Instant::now() < until, "the idle epoch thread never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_stopped_at_100ms(&plugin).await;
}

#[tokio::test]
async fn a_log_flood_stops_at_the_line_budget_and_is_reported_once_per_call() {
    let _listening = listen_at_info();
    let (plugin, heard) = flooder(150, LogLimits::default()).await;
    let decision = plugin.authenticate(&request("mallory")).await;
    assert!(matches!(decision, Ok(Decision::Deny(_))), "{decision:?}");
    plugin.authenticate(&request("alice")).await.unwrap();
    let heard = heard.lock().unwrap().clone();
    assert_eq!(
        heard.len(),
        1,
        "one report, for the flooding call: {heard:?}"
    );
    let (name, dropped) = &heard[0];
    assert_eq!(name, "flooder");
    assert_eq!(dropped.lines, 50, "150 written, 100 allowed");
    assert!(dropped.bytes >= 50 * 70, "{dropped:?}");
}

#[tokio::test]
async fn a_log_flood_stops_at_the_byte_budget() {
    let _listening = listen_at_info();
    let (plugin, heard) = flooder(
        50,
        LogLimits {
            lines: 1_000,
            bytes: 1_000,
        },
    )
    .await;
    plugin.authenticate(&request("mallory")).await.unwrap();
    let heard = heard.lock().unwrap().clone();
    let dropped = heard[0].1;
    // Each forged line is 75-85 bytes escaped: about a dozen fit in 1000.
    assert!((35..=40).contains(&dropped.lines), "{dropped:?}");
}

#[tokio::test]
async fn lines_nobody_listens_to_spend_no_budget() {
    let (plugin, heard) = flooder(150, LogLimits::default()).await;
    plugin.authenticate(&request("mallory")).await.unwrap();
    assert!(heard.lock().unwrap().is_empty());
}
