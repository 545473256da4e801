//! Claim rules: `{"when": {CLAIM: VALUE, ...}, "account": ..., ...}`. The
//! first rule whose every condition holds decides; a rule without `when`
//! matches any token that verified.
//!
//! A condition holds when the claim equals the value, or the claim is a
//! list containing it; a list of values means any of them. Claim names may
//! be dotted paths into nested objects (`realm_access.roles`).

use plugin_support::GrantSpec;
use serde_json::Value;

pub struct Rule {
    when: Vec<(String, Value)>,
    pub grant: GrantSpec,
}

impl Rule {
    pub fn parse(value: Value, what: &str) -> Result<Rule, String> {
        let Value::Object(mut map) = value else {
            return Err(format!("{what}: must be an object"));
        };
        let when = match map.remove("when") {
            None => Vec::new(),
            Some(Value::Object(w)) => w.into_iter().collect(),
            Some(_) => return Err(format!("{what}.when: must be an object of claim: value")),
        };
        for (claim, expected) in &when {
            if claim.is_empty() || claim.split('.').any(str::is_empty) {
                return Err(format!("{what}.when: bad claim name {claim:?}"));
            }
            if expected.is_object() || expected.is_null() {
                return Err(format!(
                    "{what}.when.{claim}: expected a string, number, boolean or a list of them"
                ));
            }
        }
        let grant = GrantSpec::from_value(Value::Object(map), what)?;
        // Variables are claims, which vary by issuer: unknown ones are
        // found per login (and deny), not here.
        grant.validate(what, None)?;
        Ok(Rule { when, grant })
    }

    pub fn applies(&self, claims: &Value) -> bool {
        self.when.iter().all(|(claim, expected)| {
            let Some(actual) = claim_at(claims, claim) else {
                return false;
            };
            match expected {
                Value::Array(any) => any.iter().any(|e| holds(actual, e)),
                e => holds(actual, e),
            }
        })
    }
}

fn holds(actual: &Value, expected: &Value) -> bool {
    match actual {
        Value::Array(items) => items.contains(expected),
        a => a == expected,
    }
}

/// The claim at a dotted path.
pub fn claim_at<'c>(claims: &'c Value, path: &str) -> Option<&'c Value> {
    path.split('.').try_fold(claims, |v, key| v.get(key))
}

/// A claim as template text: strings as they are, numbers and booleans
/// printed; lists and objects have no text.
pub fn claim_text(claims: &Value, path: &str) -> Option<String> {
    match claim_at(claims, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
