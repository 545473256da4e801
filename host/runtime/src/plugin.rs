//! One loaded plugin: its linked component and a pool of configured
//! instances.
//!
//! `configure` runs once per instance, not per login, so instances are
//! kept and reused. Each has its own `Store` with a memory cap and a
//! deadline per call. An instance whose call failed in any way (trap,
//! timeout, out of memory) is dropped, never reused: its state may be
//! half-updated. An instance that has grown through half of the memory it
//! had left after `configure` is retired after its call: linear memory
//! never shrinks, and a garbage-collected language (the JS and Python
//! plugins) grows its heap login by login until a login fails on the cap.
//! Half, not more: every live instance's heap is resident, and a fresh
//! instance costs a few milliseconds once per hundreds of logins.
//! A bounded semaphore caps concurrent calls per plugin, and so the number
//! of live instances.
//!
//! Every call (instantiation with `configure`, and `authenticate`) has a
//! wall-clock deadline enforced twice. Epoch interruption stops guest code
//! that runs past it, but a guest blocked in a host call (a WASI sleep is a
//! monotonic-clock pollable the host awaits) runs no guest code, so no
//! epoch check ever happens; a timer around the call future abandons it at
//! the same deadline. Dropping the future unwinds the guest's fiber and
//! drops the host future it waited on (the sleep ends there, nothing keeps
//! running); the instance is dropped with it, never pooled, and the
//! permit, held by the caller's future, is released however that future
//! ends, including when the caller drops it.

use super::bindings::{AuthRequest, Decision, v0_1, v0_2};
use super::capabilities::Capabilities;
use super::plugin_log::{LogDropHook, LogLimits};
use super::state::{DeadlineExceeded, HostState};
use super::{Pre, Prepared};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::{Store, Trap, UpdateDeadline};

/// Resource limits for one plugin.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// Wall-clock deadline of one `authenticate` call, host calls included.
    pub timeout: Duration,
    /// Wall-clock deadline of instantiating and configuring one instance
    /// (parsing a large directory may take longer than a login).
    pub configure_timeout: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Calls in flight at once (and live instances).
    pub max_concurrency: usize,
    /// How long a login waits for a free instance before it is refused.
    pub queue_timeout: Duration,
    /// What one call may write to the host log.
    pub log: LogLimits,
}

/// Why a plugin call produced no decision. Each is a deny for the login.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("plugin exceeded its {0:?} time limit")]
    Timeout(Duration),
    #[error("plugin exceeded its memory limit of {0} MiB")]
    OutOfMemory(usize),
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin rejected its configuration: {0}")]
    ConfigRejected(String),
    #[error("cannot instantiate plugin: {0}")]
    Instantiate(String),
    #[error("plugin is busy: {0} calls in flight")]
    Busy(usize),
    #[error(
        "component imports {import}, which this plugin is not granted; grant it with `grants = {{ {key} = [...] }}` in its [[plugins]] entry"
    )]
    NotGranted { import: String, key: &'static str },
}

/// A configured instance's exports, for the WIT version it was built for.
enum Bindings {
    V0_1(v0_1::Authenticator),
    V0_2(v0_2::WithGrants),
}

struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
    /// Linear memory in use once configured.
    baseline: usize,
}

impl Instance {
    /// Whether the instance has used half of the headroom it
    /// had under the cap when it was configured.
    fn worn_out(&self) -> bool {
        let state = self.store.data();
        let headroom = state.memory_cap().saturating_sub(self.baseline);
        state.memory_used().saturating_sub(self.baseline) > headroom / 2
    }
}

pub struct Plugin {
    name: Arc<str>,
    pre: Prepared,
    capabilities: Capabilities,
    limits: PluginLimits,
    config: String,
    idle: Mutex<Vec<Instance>>,
    permits: Semaphore,
    /// Told about every call that dropped log lines.
    log_drops: Option<LogDropHook>,
}

impl Plugin {
    /// Load a plugin and configure one instance, so that a bad configuration
    /// or a plugin that cannot start is reported now, not at the first login.
    /// `log_drops` hears of every call (this first `configure` included)
    /// that wrote more log than `limits.log` allows.
    pub async fn new(
        name: &str,
        pre: Prepared,
        limits: PluginLimits,
        config: String,
        log_drops: Option<LogDropHook>,
    ) -> Result<Plugin, CallError> {
        Plugin::granted(
            name,
            pre,
            limits,
            config,
            log_drops,
            Capabilities::default(),
        )
        .await
    }

    /// [`Plugin::new`] for a plugin the operator granted `capabilities`.
    /// A component that imports a capability outside them is refused here,
    /// before any instance runs.
    pub async fn granted(
        name: &str,
        pre: Prepared,
        limits: PluginLimits,
        config: String,
        log_drops: Option<LogDropHook>,
        capabilities: Capabilities,
    ) -> Result<Plugin, CallError> {
        if let Some((import, key)) = capabilities.ungranted(&pre.imports) {
            return Err(CallError::NotGranted {
                import: import.to_owned(),
                key,
            });
        }
        let plugin = Plugin {
            name: Arc::from(name),
            pre,
            capabilities,
            permits: Semaphore::new(limits.max_concurrency.max(1)),
            limits,
            config,
            idle: Mutex::new(Vec::new()),
            log_drops,
        };
        let first = plugin.instantiate().await?;
        plugin.release(first);
        Ok(plugin)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component's top-level imports (for `check`'s unused grants).
    pub fn imports(&self) -> &[String] {
        self.pre.imports()
    }

    /// What the operator granted this plugin (conformance vectors swap its
    /// `sql` for the vector's rows; tests read its KV copies' status).
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The configuration (JSON text) this plugin's instances were given.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// The same compiled component with another configuration: a separate
    /// instance pool, with one instance configured now (as [`Plugin::new`]).
    /// Conformance vectors that carry their own configuration use this.
    pub async fn with_config(&self, config: String) -> Result<Plugin, CallError> {
        Plugin::granted(
            &self.name,
            self.pre.clone(),
            self.limits.clone(),
            config,
            self.log_drops.clone(),
            self.capabilities.clone(),
        )
        .await
    }

    /// The same component and configuration with other capabilities: a
    /// separate instance pool. Conformance vectors answer `sql` queries
    /// from the vector this way instead of from the databases.
    pub async fn with_capabilities(&self, capabilities: Capabilities) -> Result<Plugin, CallError> {
        Plugin::granted(
            &self.name,
            self.pre.clone(),
            self.limits.clone(),
            self.config.clone(),
            self.log_drops.clone(),
            capabilities,
        )
        .await
    }

    /// Decide one login. Any failure is returned, and the instance that
    /// failed is discarded.
    pub async fn authenticate(&self, request: &AuthRequest) -> Result<Decision, CallError> {
        let queued = Instant::now();
        let _permit = tokio::time::timeout(self.limits.queue_timeout, self.permits.acquire())
            .await
            .map_err(|_| CallError::Busy(self.limits.max_concurrency))?
            .map_err(|_| CallError::Busy(self.limits.max_concurrency))?;
        // A permit handed over after the queue timeout passed, before the
        // timer fired (a timer fires only when the runtime polls its driver,
        // and a plugin spinning through its epoch yields keeps the runtime
        // busy past it), is refused as well: no login waits longer than
        // `queue_timeout` for an instance, however the executor is loaded.
        if queued.elapsed() >= self.limits.queue_timeout {
            return Err(CallError::Busy(self.limits.max_concurrency));
        }
        let _ticking = self.pre.ticking();
        let mut instance = match self.take_idle() {
            Some(instance) => instance,
            None => self.instantiate().await?,
        };
        let deadline = arm_deadline(&mut instance.store, self.limits.timeout);
        let store = &mut instance.store;
        let result = match &instance.bindings {
            Bindings::V0_1(b) => {
                let call = b
                    .portcullis_authenticator_plugin()
                    .call_authenticate(store, request);
                tokio::time::timeout_at(deadline.into(), call).await
            }
            Bindings::V0_2(b) => {
                let call = b
                    .portcullis_authenticator_plugin()
                    .call_authenticate(store, request);
                tokio::time::timeout_at(deadline.into(), call).await
            }
        };
        self.settle_log(&mut instance.store, "authenticate");
        let Ok(result) = result else {
            // Abandoned mid-call: the instance is dropped here, unpooled.
            return Err(CallError::Timeout(self.limits.timeout));
        };
        match result {
            Ok(decision) => {
                if instance.worn_out() {
                    tracing::debug!(
                        plugin = %self.name,
                        memory = instance.store.data().memory_used(),
                        "retiring an instance that grew through half its memory headroom"
                    );
                } else {
                    self.release(instance);
                }
                Ok(decision)
            }
            Err(e) => Err(self.classify(&instance.store, e)),
        }
    }

    /// A new instance, configured; instantiation and `configure` share one
    /// deadline of `configure_timeout`.
    async fn instantiate(&self) -> Result<Instance, CallError> {
        let _ticking = self.pre.ticking();
        let state = HostState::new(
            self.name.clone(),
            self.limits.memory_bytes,
            self.limits.log,
            self.capabilities.clone(),
        );
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| s);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                // Give the executor back to other logins while a slow call
                // runs, then check the clock again next tick.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let deadline = arm_deadline(&mut store, self.limits.configure_timeout);
        let configured = tokio::time::timeout_at(deadline.into(), self.configure(&mut store)).await;
        self.settle_log(&mut store, "configure");
        match configured {
            Ok(Ok(bindings)) => {
                let baseline = store.data().memory_used();
                Ok(Instance {
                    store,
                    bindings,
                    baseline,
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Timeout(self.limits.configure_timeout)),
        }
    }

    async fn configure(&self, store: &mut Store<HostState>) -> Result<Bindings, CallError> {
        let instantiated = match &self.pre.pre {
            Pre::V0_1(pre) => pre.instantiate_async(&mut *store).await.map(Bindings::V0_1),
            Pre::V0_2(pre) => pre.instantiate_async(&mut *store).await.map(Bindings::V0_2),
        };
        let bindings = match instantiated {
            Ok(b) => b,
            Err(e) => {
                return Err(match self.classify(store, e) {
                    CallError::Trap(msg) => CallError::Instantiate(msg),
                    CallError::Timeout(_) => CallError::Timeout(self.limits.configure_timeout),
                    other => other,
                });
            }
        };
        let configured = match &bindings {
            Bindings::V0_1(b) => {
                b.portcullis_authenticator_plugin()
                    .call_configure(&mut *store, &self.config)
                    .await
            }
            Bindings::V0_2(b) => {
                b.portcullis_authenticator_plugin()
                    .call_configure(&mut *store, &self.config)
                    .await
            }
        };
        match configured {
            Ok(Ok(())) => Ok(bindings),
            Ok(Err(reason)) => Err(CallError::ConfigRejected(super::bindings::clean_text(
                &reason,
            ))),
            Err(e) => Err(match self.classify(store, e) {
                CallError::Timeout(_) => CallError::Timeout(self.limits.configure_timeout),
                other => other,
            }),
        }
    }

    fn classify(&self, store: &Store<HostState>, error: wasmtime::Error) -> CallError {
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return CallError::Timeout(self.limits.timeout);
        }
        if store.data().memory_exhausted {
            return CallError::OutOfMemory(self.limits.memory_bytes >> 20);
        }
        match error.downcast_ref::<Trap>() {
            Some(trap) => CallError::Trap(trap.to_string()),
            None => CallError::Trap(super::bindings::clean_text(&format!("{error}"))),
        }
    }

    /// End a call's log budget: one summary line and a report to the hook
    /// when the call dropped lines, so a flood is seen once per call and
    /// counted, not written.
    fn settle_log(&self, store: &mut Store<HostState>, call: &'static str) {
        let dropped = store.data_mut().log.take();
        if dropped.lines == 0 {
            return;
        }
        tracing::warn!(
            plugin = &*self.name,
            call,
            lines = dropped.lines,
            bytes = dropped.bytes,
            max_lines = self.limits.log.lines,
            max_bytes = self.limits.log.bytes,
            "plugin log lines dropped over the per-call budget"
        );
        if let Some(hook) = &self.log_drops {
            hook(&self.name, dropped);
        }
    }

    fn take_idle(&self) -> Option<Instance> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn release(&self, instance: Instance) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(instance);
    }
}

/// Start a call's clock: the epoch callback checks the deadline on the
/// next tick; the caller's timer waits for the same instant.
fn arm_deadline(store: &mut Store<HostState>, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    store.data_mut().deadline = deadline;
    store.set_epoch_deadline(1);
    deadline
}

#[cfg(test)]
mod tests;
