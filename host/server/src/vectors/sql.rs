//! `sql` in conformance vectors: a plugin's queries answered from the
//! vector (rows or an error kind) instead of a database, so a plugin that
//! reads users from SQL is tested offline, by `plugin test` and by the
//! smoke test before a hot swap, with exactly the rows the vector names.

use super::{SqlAnswer, SqlAnswers, Vector};
use portcullis_runtime::capabilities::sql::{
    Column, QueryResult, SqlBackend, SqlError, SqlGrant, Value,
};
use portcullis_runtime::{CallError, Capabilities, Plugin};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Answers queries from the vector running now.
#[derive(Default)]
pub struct VectorSql {
    current: Mutex<Option<SqlAnswers>>,
}

impl VectorSql {
    /// Answer from `answers` (a vector's `sql` section) until the next call.
    pub fn answer(&self, answers: Option<SqlAnswers>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = answers;
    }

    fn lookup(&self, database: &str, name: &str) -> QueryResult {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let Some(answers) = current.as_ref() else {
            return Err(SqlError::Unavailable(
                "the vector supplies no sql rows".into(),
            ));
        };
        let Some(queries) = answers.get(database) else {
            return Err(SqlError::NotGranted(database.to_owned()));
        };
        match queries.get(name) {
            None => Err(SqlError::UnknownQuery(name.to_owned())),
            Some(SqlAnswer::Error { error }) => Err(error_kind(error)),
            Some(SqlAnswer::Rows(rows)) => rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|(name, value)| {
                            Ok(Column {
                                name: name.clone(),
                                value: value_of(value).ok_or_else(|| {
                                    SqlError::Failed(format!(
                                        "vector column {name:?}: unsupported value"
                                    ))
                                })?,
                            })
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// A WIT `sql.error` from its kind's name.
fn error_kind(kind: &str) -> SqlError {
    let detail = "from the vector".to_owned();
    match kind {
        "not-granted" => SqlError::NotGranted(detail),
        "unknown-query" => SqlError::UnknownQuery(detail),
        "bad-parameters" => SqlError::BadParameters(detail),
        "timeout" => SqlError::Timeout,
        "unavailable" => SqlError::Unavailable(detail),
        "too-large" => SqlError::TooLarge(detail),
        _ => SqlError::Failed(detail),
    }
}

fn value_of(value: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        J::String(s) => Value::Text(s.clone()),
        J::Object(o) if o.len() == 1 => {
            let bytes = o.get("bytes")?.as_array()?;
            Value::Bytes(
                bytes
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<_>>()?,
            )
        }
        J::Array(_) | J::Object(_) => return None,
    })
}

impl SqlBackend for VectorSql {
    fn query(
        &self,
        database: &str,
        name: &str,
        _params: Vec<Value>,
        _deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = QueryResult> + Send + 'static>> {
        let answer = self.lookup(database, name);
        Box::pin(async move { answer })
    }
}

/// The databases `vectors` supply rows for.
pub fn databases(vectors: &[Vector]) -> Vec<String> {
    let mut names: Vec<String> = vectors
        .iter()
        .filter_map(|v| v.sql.as_ref())
        .flat_map(|answers| answers.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// When any of `vectors` supplies rows: `plugin` with its `sql` grant (or,
/// for a plugin granted none, the vectors' databases) answered from the
/// vectors, and the backend to point at each vector in turn.
pub(super) async fn granted(
    plugin: &Plugin,
    vectors: &[Vector],
) -> Result<Option<(Plugin, Arc<VectorSql>)>, CallError> {
    if vectors.iter().all(|v| v.sql.is_none()) {
        return Ok(None);
    }
    let backend = Arc::new(VectorSql::default());
    let databases = match &plugin.capabilities().sql {
        Some(grant) => grant.databases.clone(),
        None => databases(vectors).into(),
    };
    let mut capabilities: Capabilities = plugin.capabilities().clone();
    capabilities.sql = Some(SqlGrant {
        databases,
        backend: backend.clone(),
    });
    Ok(Some((
        plugin.with_capabilities(capabilities).await?,
        backend,
    )))
}
