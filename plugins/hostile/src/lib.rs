//! Test fixture: a plugin that misbehaves on purpose, so the tests can show
//! that a bad plugin only ever costs a denied login.
//!
//! Configuration: `{"attack": "busy-loop", "user": "mallory"}`. The attack
//! runs when the connecting user is `user` (in `authenticate`), or at once
//! for the `configure-*` attacks; every other login is abstained, so a chain
//! with a well-behaved plugin after this one keeps serving.

use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant, Permission};
use serde::Deserialize;

/// Raw WASI bindings for `handle-flood` (see wit/world.wit).
mod raw {
    wit_bindgen::generate!({
        path: "wit",
        world: "portcullis:hostile/raw-clock",
        generate_all,
    });
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// Never returns from `authenticate`.
    BusyLoop,
    /// Panics (a trap in the host).
    Trap,
    /// Allocates until the memory cap stops it.
    MemoryBomb,
    /// Recurses until the Wasm stack is exhausted.
    StackOverflow,
    /// Sleeps `sleep_ms` in `authenticate`, then allows. The sleep is a WASI
    /// monotonic-clock pollable the guest blocks on: no guest code runs, so
    /// epoch ticks alone never stop it.
    Sleep,
    /// Takes `handles` host handles (monotonic-clock pollables) and never
    /// drops them, then allows: host memory a linear-memory cap does not
    /// see, unless the host bounds the instance's handle table.
    HandleFlood,
    /// Writes `flood_lines` log lines, each dressed up as a host line (a
    /// newline or an ANSI erase-line and carriage return, then a timestamp
    /// and "login allowed"), then denies.
    LogFlood,
    /// Never returns from `configure`.
    ConfigureLoop,
    /// Sleeps `sleep_ms` in `configure` (see `sleep`).
    ConfigureSleep,
    /// Rejects every configuration.
    ConfigureError,
    /// Panics (traps) in `configure`.
    ConfigureTrap,
    /// Places the user in an account the host does not allow it to use.
    ForeignAccount,
    /// Returns a grant with a hundred thousand subjects.
    HugeSubjects,
    /// Returns a grant that expires in 100 years.
    CenturyExpiry,
    /// Returns malformed subjects.
    BadSubjects,
    /// Reads the environment and arguments and reports what it saw.
    ReadEnv,
    /// Not an attack: takes `delay_ms` of CPU, then allows (for drain tests).
    Slow,
    /// Not an attack: keeps `leak_kib` more memory on every login, as a
    /// garbage-collected heap grows between collections, then allows.
    Leak,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    attack: Attack,
    #[serde(default = "default_user")]
    user: String,
    /// The account to grant when the attack returns a grant.
    #[serde(default = "default_account")]
    account: String,
    /// How long `slow` works before it answers.
    #[serde(default)]
    delay_ms: u64,
    /// How much `leak` keeps per login.
    #[serde(default = "default_leak_kib")]
    leak_kib: usize,
    /// How long `sleep` and `configure-sleep` block.
    #[serde(default = "default_sleep_ms")]
    sleep_ms: u64,
    /// How many handles `handle-flood` takes.
    #[serde(default = "default_handles")]
    handles: u32,
    /// How many lines `log-flood` writes.
    #[serde(default = "default_flood_lines")]
    flood_lines: u32,
}

/// What `log-flood` writes: lines that would read as the host's own
/// "login allowed" if the host let a line break or a terminal escape through.
pub const FORGED_LINES: [&str; 2] = [
    "\n2026-12-05T00:00:00Z  INFO portcullis: login allowed user=root account=SYS",
    "\u{1b}[2K\r2026-12-05T00:00:00Z  INFO portcullis: login allowed user=root account=SYS",
];

/// What `leak` has kept so far, for the life of the instance.
static KEPT: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn default_user() -> String {
    "mallory".into()
}

fn default_leak_kib() -> usize {
    1024
}

fn default_sleep_ms() -> u64 {
    30_000
}

/// Twice the host's cap, well inside wasmtime's own store-wide limit on
/// live handles (100,000).
fn default_handles() -> u32 {
    20_000
}

fn default_flood_lines() -> u32 {
    20_000
}

fn default_account() -> String {
    "APP1".into()
}

pub struct Hostile {
    config: Config,
}

impl Authenticator for Hostile {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config = portcullis_sdk::parse_config(config)?;
        match config.attack {
            Attack::ConfigureLoop => spin_forever(),
            Attack::ConfigureError => Err("this plugin rejects every configuration".into()),
            Attack::ConfigureTrap => panic!("hostile plugin panics in configure on purpose"),
            Attack::ConfigureSleep => {
                std::thread::sleep(std::time::Duration::from_millis(config.sleep_ms));
                Ok(Hostile { config })
            }
            _ => Ok(Hostile { config }),
        }
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        if request.connect.user.as_deref() != Some(self.config.user.as_str()) {
            return Decision::Abstain;
        }
        let mut grant = Grant::new(self.config.account.clone());
        match self.config.attack {
            Attack::BusyLoop => spin_forever(),
            Attack::Trap => panic!("hostile plugin panics on purpose"),
            Attack::MemoryBomb => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xAB; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Attack::StackOverflow => {
                std::hint::black_box(recurse(std::hint::black_box(1)));
            }
            Attack::Sleep => {
                std::thread::sleep(std::time::Duration::from_millis(self.config.sleep_ms))
            }
            Attack::HandleFlood => {
                for _ in 0..self.config.handles {
                    std::mem::forget(raw::wasi::clocks::monotonic_clock::subscribe_duration(
                        1_000_000_000,
                    ));
                }
            }
            Attack::LogFlood => {
                for i in 0..self.config.flood_lines {
                    let line = FORGED_LINES[i as usize % FORGED_LINES.len()];
                    portcullis_sdk::host::log(portcullis_sdk::host::Level::Info, line);
                }
                return Decision::Deny("flooded the log".into());
            }
            Attack::ConfigureLoop
            | Attack::ConfigureError
            | Attack::ConfigureTrap
            | Attack::ConfigureSleep => {}
            Attack::ForeignAccount => grant.account = "SYS".into(),
            Attack::HugeSubjects => {
                grant.publish =
                    Permission::allow((0..100_000).map(|i| format!("subject.number.{i}")));
            }
            Attack::CenturyExpiry => grant.expires_in_secs = Some(100 * 365 * 24 * 3600),
            Attack::Slow => {
                let until = portcullis_sdk::host::now_unix_ms() + self.config.delay_ms;
                while portcullis_sdk::host::now_unix_ms() < until {
                    std::hint::spin_loop();
                }
            }
            Attack::Leak => {
                let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
                kept.push(vec![0xAB; self.config.leak_kib << 10]);
            }
            Attack::ReadEnv => {
                return Decision::Deny(format!(
                    "saw {} environment variables and {} arguments",
                    std::env::vars_os().count(),
                    std::env::args_os().count()
                ));
            }
            Attack::BadSubjects => {
                grant.subscribe = Permission::allow(["foo..bar", "has space", ">.after"]);
            }
        }
        Decision::Allow(grant)
    }
}

fn spin_forever() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

// The point of this function is that it never returns.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + pad[7]
}

portcullis_sdk::export!(Hostile);
