//! Conformance vectors (docs/vectors.md): JSON files that each hold one
//! login request, the plugin configuration and the decision expected.
//!
//! One runner serves three callers: `portcullis plugin test --vectors DIR`,
//! the test suite (every static-users plugin, whatever its language, must
//! pass the same directory) and the hot-swap path, which smoke-tests a new
//! plugin version before it replaces the running one. Requests go through
//! the same claims -> WIT conversion as real logins, so a vector exercises
//! the real path; only the NATS transport is left out. Host policy
//! (accounts, expiry, subjects, ceiling) applies when the caller has one,
//! as `portcullis run` applies it: a grant it refuses is a denial.

use crate::policy::{self, PluginPolicy};
use portcullis_protocol::claims::{AuthorizationRequest, RequestClaims};
use portcullis_runtime::bindings::{Decision, Grant};
use portcullis_runtime::{CallError, Plugin};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file in a vector directory that holds the default plugin
/// configuration; it is not a vector.
pub const CONFIG_FILE: &str = "config.json";

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{} holds no vectors (*.json files other than config.json)", dir.display())]
    Empty { dir: PathBuf },
}

/// One conformance vector, loaded and resolved.
#[derive(Debug, Clone)]
pub struct Vector {
    /// File name without `.json`.
    pub id: String,
    pub description: String,
    /// The plugin configuration (JSON text) for this vector: its own
    /// `config`, else the directory's config.json, else `None`: the
    /// configuration the plugin under test already has.
    pub config: Option<String>,
    /// The `nats` claims of the authorization request.
    pub request: AuthorizationRequest,
    pub expect: Expect,
    /// What the plugin's `sql` queries answer during this vector:
    /// database -> query name -> rows or an error.
    pub sql: Option<SqlAnswers>,
}

/// A vector's `sql` section: database -> query name -> answer.
pub type SqlAnswers =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, SqlAnswer>>;

/// What one query answers: rows (each an object of column name -> value:
/// a string is text, an integer int, a number float, true/false boolean,
/// null NULL, `{"bytes": [1, 2]}` bytes), or `{"error": "KIND"}` with a
/// kind of the WIT `sql.error` (`unavailable`, `timeout`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SqlAnswer {
    Rows(Vec<serde_json::Map<String, serde_json::Value>>),
    Error { error: String },
}

/// What a vector file holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    request: serde_json::Value,
    expect: Expect,
    #[serde(default)]
    sql: Option<SqlAnswers>,
}

/// The decision a vector expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    Allow,
    Deny,
    Abstain,
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expected::Allow => "allow",
            Expected::Deny => "deny",
            Expected::Abstain => "abstain",
        })
    }
}

/// The `expect` object. Every field but `decision` is compared only when
/// present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub decision: Expected,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub publish: Option<ExpectPermission>,
    #[serde(default)]
    pub subscribe: Option<ExpectPermission>,
    /// `Some(None)`: the vector says `"response": null`, no response permission.
    #[serde(default, deserialize_with = "present")]
    pub response: Option<Option<ExpectResponse>>,
    /// `Some(None)`: `"expires_in_secs": null`, the host's maximum.
    #[serde(default, deserialize_with = "present")]
    pub expires_in_secs: Option<Option<u64>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub reason_contains: Option<String>,
}

/// A publish or subscribe expectation; a list left out is expected empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectPermission {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectResponse {
    pub max: u32,
    #[serde(default)]
    pub ttl_ms: u64,
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl Expect {
    /// Fields that only make sense for another decision are mistakes in
    /// the vector, not something to ignore.
    fn check(&self) -> Result<(), String> {
        let allow_only = [
            ("account", self.account.is_some()),
            ("publish", self.publish.is_some()),
            ("subscribe", self.subscribe.is_some()),
            ("response", self.response.is_some()),
            ("expires_in_secs", self.expires_in_secs.is_some()),
            ("tags", self.tags.is_some()),
        ];
        if self.decision != Expected::Allow
            && let Some((field, _)) = allow_only.iter().find(|(_, set)| *set)
        {
            return Err(format!(
                "expect.{field} is only compared for \"allow\", this vector expects \"{}\"",
                self.decision
            ));
        }
        if self.decision != Expected::Deny && self.reason_contains.is_some() {
            return Err(format!(
                "expect.reason_contains is only compared for \"deny\", this vector expects \"{}\"",
                self.decision
            ));
        }
        Ok(())
    }
}

/// The `nats` claims of an authorization request, from either that object
/// or a whole request claims object (with `nats` inside). Missing fields
/// are empty.
pub fn parse_request(value: serde_json::Value) -> Result<AuthorizationRequest, serde_json::Error> {
    if value.get("nats").is_some() {
        Ok(serde_json::from_value::<RequestClaims>(value)?.nats)
    } else if value.is_null() {
        Ok(AuthorizationRequest::default())
    } else {
        serde_json::from_value(value)
    }
}

/// Load every vector of `dir`, in file name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Vector>, VectorError> {
    load_dir_with_config(dir, None)
}

/// Like [`load_dir`], with `config` (JSON text) in place of the directory's
/// config.json when given.
pub fn load_dir_with_config(dir: &Path, config: Option<&str>) -> Result<Vec<Vector>, VectorError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| VectorError::Read { path, source }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != CONFIG_FILE)
                && p.is_file()
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(VectorError::Empty {
            dir: dir.to_owned(),
        });
    }
    let config_path = dir.join(CONFIG_FILE);
    let read = match config {
        Some(text) => Ok(text.to_owned()),
        None => std::fs::read_to_string(&config_path),
    };
    let dir_config = match read {
        Ok(text) => {
            serde_json::from_str::<serde_json::Value>(&text).map_err(|source| {
                VectorError::Parse {
                    path: config_path.clone(),
                    source,
                }
            })?;
            Some(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(VectorError::Read {
                path: config_path,
                source,
            });
        }
    };
    files
        .iter()
        .map(|path| load_file(path, dir_config.as_deref()))
        .collect()
}

/// Load one vector file; `dir_config` is the directory's config.json.
pub fn load_file(path: &Path, dir_config: Option<&str>) -> Result<Vector, VectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| VectorError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text, path, dir_config)
}

/// Parse the text of one vector file as if read from `path`: separate from
/// reading it so the parser can be fuzzed and property-tested without files.
pub fn parse_file(
    text: &str,
    path: &Path,
    dir_config: Option<&str>,
) -> Result<Vector, VectorError> {
    let parse_err = |source| VectorError::Parse {
        path: path.to_owned(),
        source,
    };
    let file: VectorFile = serde_json::from_str(text).map_err(parse_err)?;
    let request = parse_request(file.request).map_err(parse_err)?;
    file.expect.check().map_err(|reason| VectorError::Invalid {
        path: path.to_owned(),
        reason,
    })?;
    let config = match file.config {
        Some(value) => Some(value.to_string()),
        None => dir_config.map(str::to_owned),
    };
    Ok(Vector {
        id: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        description: file.description,
        config,
        request,
        expect: file.expect,
        sql: file.sql,
    })
}

/// A decision as JSON, tagged in lowercase the way vectors name it:
/// `{"decision":"allow","account":"APP1",...}`, `{"decision":"deny","reason":"..."}`,
/// `{"decision":"abstain"}`.
#[derive(Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum DecisionJson<'a> {
    Allow(&'a Grant),
    Deny { reason: &'a str },
    Abstain,
}

impl<'a> From<&'a Decision> for DecisionJson<'a> {
    fn from(decision: &'a Decision) -> Self {
        match decision {
            Decision::Allow(grant) => DecisionJson::Allow(grant),
            Decision::Deny(reason) => DecisionJson::Deny { reason },
            Decision::Abstain => DecisionJson::Abstain,
        }
    }
}

/// How one vector went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The plugin decided, but not as expected: what differs.
    Fail(Vec<String>),
    /// The plugin produced no decision (trap, timeout, rejected config).
    Error(String),
}

#[derive(Debug, Clone)]
pub struct VectorResult {
    pub id: String,
    pub description: String,
    pub outcome: Outcome,
    /// Time of the `authenticate` call (plus configuring, for the first
    /// vector of a configuration).
    pub elapsed: Duration,
    /// The call ran out of its deadline (the outcome is an error).
    pub timed_out: bool,
}

/// The result of a run, in vector order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub results: Vec<VectorResult>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// True when every vector passed (and there was at least one).
    pub fn ok(&self) -> bool {
        !self.results.is_empty() && self.failed() == 0
    }

    /// The results that did not pass.
    pub fn failures(&self) -> impl Iterator<Item = &VectorResult> {
        self.results.iter().filter(|r| r.outcome != Outcome::Pass)
    }
}

/// A pass/fail table, one vector a line, then a summary line
/// `N vectors: N passed, N failed`.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .results
            .iter()
            .map(|r| r.id.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(f, "{:<width$}  result  time      detail", "vector")?;
        for r in &self.results {
            let (result, detail) = match &r.outcome {
                Outcome::Pass => ("pass", r.description.clone()),
                Outcome::Fail(why) => ("FAIL", why.join("; ")),
                Outcome::Error(why) => ("ERROR", why.clone()),
            };
            let mut time = String::new();
            let _ = write!(time, "{:.1?}", r.elapsed);
            writeln!(f, "{:<width$}  {result:<6}  {time:<8}  {detail}", r.id)?;
        }
        write!(
            f,
            "{} vectors: {} passed, {} failed",
            self.results.len(),
            self.passed(),
            self.failed()
        )
    }
}

/// Run `vectors` against `plugin`, in order. A vector with a configuration
/// runs on instances configured with it (one pool per distinct
/// configuration); one without runs on `plugin` as configured. With a
/// `policy`, an allow it refuses counts as the denial production answers.
pub async fn run(plugin: &Plugin, vectors: &[Vector], policy: Option<&PluginPolicy>) -> Report {
    // Vectors that supply rows run on the same component with its `sql`
    // queries answered from the vector, never from a database.
    let answered;
    let (plugin, sql) = match sql::granted(plugin, vectors).await {
        Ok(None) => (plugin, None),
        Ok(Some((with_rows, backend))) => {
            answered = with_rows;
            (&answered, Some(backend))
        }
        Err(e) => {
            let mut report = Report::default();
            for vector in vectors {
                report.results.push(VectorResult {
                    id: vector.id.clone(),
                    description: vector.description.clone(),
                    outcome: Outcome::Error(e.to_string()),
                    elapsed: Duration::ZERO,
                    timed_out: false,
                });
            }
            return report;
        }
    };
    let mut configured: HashMap<String, Result<Plugin, String>> = HashMap::new();
    let mut report = Report::default();
    for vector in vectors {
        if let Some(backend) = &sql {
            backend.answer(vector.sql.clone());
        }
        let started = Instant::now();
        let target = match &vector.config {
            None => Ok(plugin),
            Some(config) => {
                if !configured.contains_key(config) {
                    let loaded = plugin
                        .with_config(config.clone())
                        .await
                        .map_err(|e| e.to_string());
                    configured.insert(config.clone(), loaded);
                }
                configured[config].as_ref().map_err(Clone::clone)
            }
        };
        let mut timed_out = false;
        let outcome = match target {
            Err(e) => Outcome::Error(e),
            Ok(target) => match target
                .authenticate(&crate::request::auth_request(&vector.request))
                .await
            {
                Ok(decision) => compare(
                    &vector.expect,
                    &as_production(decision, policy, &vector.request),
                ),
                Err(e) => {
                    timed_out = matches!(e, CallError::Timeout(_));
                    Outcome::Error(e.to_string())
                }
            },
        };
        report.results.push(VectorResult {
            id: vector.id.clone(),
            description: vector.description.clone(),
            outcome,
            elapsed: started.elapsed(),
            timed_out,
        });
    }
    report
}

/// The decision a login gets: an allow whose grant `policy` refuses is a
/// denial with the reason the host gives.
fn as_production(
    decision: Decision,
    policy: Option<&PluginPolicy>,
    request: &AuthorizationRequest,
) -> Decision {
    let (Some(policy), Decision::Allow(grant)) = (policy, &decision) else {
        return decision;
    };
    let now = portcullis_protocol::time::unix_now();
    match policy::check(grant, policy, request, now) {
        Ok(_) => decision,
        Err(violation) => Decision::Deny(policy::refused(violation)),
    }
}

/// Compare a decision with what the vector expects.
pub fn compare(expect: &Expect, decision: &Decision) -> Outcome {
    let got = match decision {
        Decision::Allow(_) => Expected::Allow,
        Decision::Deny(_) => Expected::Deny,
        Decision::Abstain => Expected::Abstain,
    };
    if got != expect.decision {
        let detail = match decision {
            Decision::Allow(grant) => format!(" into {:?}", grant.account),
            Decision::Deny(reason) => format!(" ({reason:?})"),
            Decision::Abstain => String::new(),
        };
        return Outcome::Fail(vec![format!(
            "expected {}, got {got}{detail}",
            expect.decision
        )]);
    }
    let mut diffs = Vec::new();
    match decision {
        Decision::Allow(grant) => compare_grant(expect, grant, &mut diffs),
        Decision::Deny(reason) => {
            if let Some(needle) = &expect.reason_contains
                && !reason.contains(needle.as_str())
            {
                diffs.push(format!("reason {reason:?} does not contain {needle:?}"));
            }
        }
        Decision::Abstain => {}
    }
    if diffs.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(diffs)
    }
}

fn compare_grant(expect: &Expect, grant: &Grant, diffs: &mut Vec<String>) {
    let mut differs = |field: &str, want: String, got: String| {
        if want != got {
            diffs.push(format!("{field}: expected {want}, got {got}"));
        }
    };
    if let Some(account) = &expect.account {
        differs(
            "account",
            format!("{account:?}"),
            format!("{:?}", grant.account),
        );
    }
    for (field, want, got) in [
        ("publish", &expect.publish, &grant.publish),
        ("subscribe", &expect.subscribe, &grant.subscribe),
    ] {
        if let Some(want) = want {
            differs(
                &format!("{field}.allow"),
                format!("{:?}", want.allow),
                format!("{:?}", got.allow),
            );
            differs(
                &format!("{field}.deny"),
                format!("{:?}", want.deny),
                format!("{:?}", got.deny),
            );
        }
    }
    if let Some(want) = &expect.response {
        let got = grant.response.as_ref().map(|r| ExpectResponse {
            max: r.max,
            ttl_ms: r.ttl_ms,
        });
        differs("response", format!("{want:?}"), format!("{got:?}"));
    }
    if let Some(want) = &expect.expires_in_secs {
        differs(
            "expires_in_secs",
            format!("{want:?}"),
            format!("{:?}", grant.expires_in_secs),
        );
    }
    if let Some(want) = &expect.tags {
        differs("tags", format!("{want:?}"), format!("{:?}", grant.tags));
    }
}

mod sql;

pub use sql::{VectorSql, databases as sql_databases};

#[cfg(test)]
mod tests;
