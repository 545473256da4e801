//! The sql-users plugin: users kept in a PostgreSQL table the operator
//! owns. The operator writes the statement (`[databases.NAME.queries]` in
//! portcullis.toml) and grants the plugin that database; the plugin runs
//! it with the CONNECT user name as `$1` and reads one row.
//!
//! Configuration: `{"database": "users", "query": "user"}`, optionally
//! `"unknown_user": "abstain"` (default `"deny"`) to let the next plugin
//! decide users the table does not list, and `"columns"` to rename the
//! columns it reads (`pass`, `account`, `permissions`, `expires`).
//!
//! The row: `pass` (plaintext, a bcrypt hash or an argon2 PHC string, as
//! static-users), `account`, optionally `permissions` (the nats-io
//! Permissions JSON of users.json, as text/json/jsonb) and `expires`
//! (Unix seconds; a row past it is denied, a later one caps the user
//! JWT). A database error denies the login with the error's kind; the
//! host logs the details.

use plugin_support::Permissions;
use portcullis_sdk::sql::{self, Value};
use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// A `[databases.NAME]` the plugin's entry grants.
    database: String,
    /// A statement of that database taking the user name as `$1`.
    query: String,
    #[serde(default)]
    unknown_user: Unknown,
    #[serde(default)]
    columns: Columns,
}

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Unknown {
    #[default]
    Deny,
    Abstain,
}

/// Which columns of the row hold what.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Columns {
    pass: String,
    account: String,
    permissions: String,
    expires: String,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            pass: "pass".into(),
            account: "account".into(),
            permissions: "permissions".into(),
            expires: "expires".into(),
        }
    }
}

pub struct SqlUsers {
    config: Config,
}

impl Authenticator for SqlUsers {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config = portcullis_sdk::parse_config(config)?;
        if config.database.is_empty() || config.query.is_empty() {
            return Err(
                "\"database\" and \"query\" name a [databases] entry and one of its queries".into(),
            );
        }
        Ok(SqlUsers { config })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let Some(name) = request.connect.user.as_deref().filter(|u| !u.is_empty()) else {
            return Decision::Abstain;
        };
        let rows = match sql::query(
            &self.config.database,
            &self.config.query,
            &[Value::Text(name.to_owned())],
        ) {
            Ok(rows) => rows,
            Err(e) => return Decision::Deny(format!("user database: {}", sql::describe(&e))),
        };
        let row = match rows.as_slice() {
            [] if self.config.unknown_user == Unknown::Abstain => return Decision::Abstain,
            [] => return Decision::Deny(format!("unknown user {name:?}")),
            [row] => row,
            _ => return Decision::Deny(format!("user {name:?} has {} rows", rows.len())),
        };
        let columns = &self.config.columns;
        let text = |column: &str| match sql::column(row, column) {
            Some(Value::Text(s)) => Ok(Some(s.as_str())),
            Some(Value::Null) | None => Ok(None),
            Some(_) => Err(format!("column {column:?} of user {name:?} is not text")),
        };
        let user = (|| {
            let pass = text(&columns.pass)?
                .ok_or_else(|| format!("user {name:?} has no {:?} column", columns.pass))?;
            plugin_support::password::check(pass)
                .map_err(|e| format!("user {name:?} has a {e}"))?;
            let account = text(&columns.account)?
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("user {name:?} has no account"))?;
            let permissions = text(&columns.permissions)?
                .map(serde_json::from_str::<Permissions>)
                .transpose()
                .map_err(|e| format!("user {name:?} has malformed permissions: {e}"))?;
            let expires = match sql::column(row, &columns.expires) {
                Some(Value::Int(t)) => Some(*t),
                Some(Value::Null) | None => None,
                Some(_) => return Err(format!("column {:?} is not an integer", columns.expires)),
            };
            Ok((pass, account, permissions, expires))
        })();
        let (pass, account, permissions, expires) = match user {
            Ok(user) => user,
            Err(reason) => return Decision::Deny(reason),
        };
        let given = request.connect.pass.as_deref().unwrap_or_default();
        if !plugin_support::password::matches(pass, given) {
            return Decision::Deny(format!("wrong password for user {name:?}"));
        }
        let mut grant = Grant::new(account.to_owned());
        grant.display_name = Some(name.to_owned());
        if let Some(p) = permissions {
            grant.publish = p.publish.into();
            grant.subscribe = p.subscribe.into();
            grant.response = p.response.as_ref().map(Into::into);
        }
        if let Some(expires) = expires {
            let now = (portcullis_sdk::host::now_unix_ms() / 1000) as i64;
            if expires <= now {
                return Decision::Deny(format!("user {name:?} expired"));
            }
            grant.expires_in_secs = Some((expires - now) as u64);
        }
        Decision::Allow(grant)
    }
}

portcullis_sdk::export!(SqlUsers);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::sql::{Column, Error};

    fn column(name: &str, value: Value) -> Column {
        Column {
            name: name.into(),
            value,
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// A plugin over a table with alice (plaintext), bob (bcrypt, permissions)
    /// and old (expired).
    fn plugin(config: &str) -> SqlUsers {
        let bob_hash = bcrypt::hash("bob", 4).unwrap();
        sql::stub(move |database, query, params| {
            assert_eq!((database, query), ("users", "user"));
            let [Value::Text(name)] = params else {
                panic!("one text parameter expected");
            };
            Ok(match name.as_str() {
                "alice" => vec![vec![
                    column("pass", text("alice")),
                    column("account", text("APP1")),
                ]],
                "bob" => vec![vec![
                    column("pass", text(&bob_hash)),
                    column("account", text("APP2")),
                    column(
                        "permissions",
                        text(r#"{"pub":{"allow":["bob.>"]},"resp":{"max":1}}"#),
                    ),
                    column("expires", Value::Int(4_000_000_000)),
                ]],
                "old" => vec![vec![
                    column("pass", text("old")),
                    column("account", text("APP1")),
                    column("expires", Value::Int(1)),
                ]],
                "down" => {
                    return Err(Error::Unavailable(
                        "database users cannot be reached".into(),
                    ));
                }
                _ => vec![],
            })
        });
        SqlUsers::configure(config).unwrap()
    }

    const CONFIG: &str = r#"{"database": "users", "query": "user"}"#;

    #[test]
    fn rows_become_grants() {
        let p = plugin(CONFIG);
        let Decision::Allow(alice) = p.authenticate(&AuthRequest::with_password("alice", "alice"))
        else {
            panic!("alice must be allowed");
        };
        assert_eq!(alice.account, "APP1");
        assert_eq!(alice.expires_in_secs, None);
        let Decision::Allow(bob) = p.authenticate(&AuthRequest::with_password("bob", "bob")) else {
            panic!("bob must be allowed");
        };
        assert_eq!(
            (bob.account.as_str(), bob.publish.allow.as_slice()),
            ("APP2", &["bob.>".to_owned()][..])
        );
        assert_eq!(bob.response.unwrap().max, 1);
        assert!(bob.expires_in_secs.is_some_and(|s| s > 0));
    }

    #[test]
    fn wrong_unknown_expired_and_unavailable_are_denied() {
        let p = plugin(CONFIG);
        let deny = |user: &str, pass: &str| match p
            .authenticate(&AuthRequest::with_password(user, pass))
        {
            Decision::Deny(reason) => reason,
            other => panic!("{user} must be denied: {other:?}"),
        };
        assert!(deny("alice", "bob").contains("wrong password"));
        assert!(deny("bob", "alice").contains("wrong password"));
        assert!(deny("eve", "x").contains("unknown user"));
        assert!(deny("old", "old").contains("expired"));
        let down = deny("down", "x");
        assert!(
            down.contains("unavailable") && !down.contains("x\""),
            "{down}"
        );
        assert!(matches!(
            p.authenticate(&AuthRequest::empty()),
            Decision::Abstain
        ));
    }

    #[test]
    fn unknown_users_may_be_left_to_the_next_plugin() {
        let p = plugin(r#"{"database": "users", "query": "user", "unknown_user": "abstain"}"#);
        assert!(matches!(
            p.authenticate(&AuthRequest::with_password("eve", "x")),
            Decision::Abstain
        ));
        assert!(SqlUsers::configure(r#"{"database": "users"}"#).is_err());
        assert!(
            SqlUsers::configure(r#"{"database": "users", "query": "user", "sql": "DROP"}"#)
                .is_err()
        );
    }
}
