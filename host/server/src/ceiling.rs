//! A per-plugin ceiling on what its grants may allow: the subjects a
//! grant's publish and subscribe allow lists name must each fall within
//! one of the operator's patterns. A grant outside is refused, never
//! trimmed: a trimmed grant is a user with permissions nobody asked for.
//!
//! "Within" means every subject the grant's pattern matches is matched by
//! the ceiling's pattern, token by token with NATS wildcards: `>` covers
//! one or more remaining tokens, `*` exactly one (a wildcard in the grant
//! is within `*` or `>`, never within a literal token).

use serde::Deserialize;

/// `ceiling = { publish = [...], subscribe = [...] }`; a direction left out
/// is not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceiling {
    #[serde(default)]
    pub publish: Option<Vec<String>>,
    #[serde(default)]
    pub subscribe: Option<Vec<String>>,
}

/// A grant's allow list that reaches past the ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    /// `publish` or `subscribe`.
    pub direction: &'static str,
    /// The subject outside the ceiling; `>` for an empty allow list, which
    /// NATS reads as "everything".
    pub subject: String,
}

impl Ceiling {
    /// Whether `publish` and `subscribe` allow lists stay within the
    /// ceiling.
    pub fn admits(&self, publish: &[String], subscribe: &[String]) -> Result<(), Outside> {
        for (direction, limit, allow) in [
            ("publish", &self.publish, publish),
            ("subscribe", &self.subscribe, subscribe),
        ] {
            let Some(limit) = limit else { continue };
            if allow.is_empty() {
                if !limit.iter().any(|p| within(">", p)) {
                    return Err(Outside {
                        direction,
                        subject: ">".into(),
                    });
                }
                continue;
            }
            if let Some(subject) = allow.iter().find(|s| !limit.iter().any(|p| within(s, p))) {
                return Err(Outside {
                    direction,
                    subject: subject.clone(),
                });
            }
        }
        Ok(())
    }

    /// Every pattern of the ceiling.
    pub fn patterns(&self) -> impl Iterator<Item = &String> {
        self.publish.iter().chain(&self.subscribe).flatten()
    }
}

/// Whether every subject `subject` matches is matched by `pattern`.
pub fn within(subject: &str, pattern: &str) -> bool {
    let mut s = subject.split('.');
    let mut p = pattern.split('.');
    loop {
        match (s.next(), p.next()) {
            (None, None) => return true,
            (Some(_), Some(">")) => return true,
            (Some(">"), Some(_)) => return false,
            (Some(_), Some("*")) => {}
            (Some("*"), Some(_)) => return false,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_follows_nats_wildcards() {
        for (subject, pattern) in [
            ("app.orders", "app.>"),
            ("app.orders.new", "app.>"),
            ("app.*", "app.>"),
            ("app.>", "app.>"),
            ("app.orders", "app.*"),
            ("app.*", "app.*"),
            ("app.orders", "app.orders"),
            ("_INBOX.>", ">"),
        ] {
            assert!(within(subject, pattern), "{subject} within {pattern}");
        }
        for (subject, pattern) in [
            ("app", "app.>"),
            (">", "app.>"),
            ("app.>", "app.*"),
            ("app.orders.new", "app.*"),
            ("app.*", "app.orders"),
            ("apps.orders", "app.>"),
            ("app.orders", "app.orders.new"),
            ("$SYS.REQ.USER.AUTH", "app.>"),
        ] {
            assert!(!within(subject, pattern), "{subject} not within {pattern}");
        }
    }

    #[test]
    fn a_grant_outside_the_ceiling_is_named_and_an_empty_allow_list_is_everything() {
        let ceiling = Ceiling {
            publish: Some(vec!["app.>".into()]),
            subscribe: None,
        };
        let list = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(ceiling.admits(&list(&["app.a", "app.b.>"]), &[]), Ok(()));
        assert_eq!(
            ceiling.admits(&list(&["app.a", "$SYS.>"]), &[]),
            Err(Outside {
                direction: "publish",
                subject: "$SYS.>".into()
            })
        );
        assert_eq!(
            ceiling.admits(&[], &list(&["anything.>"])),
            Err(Outside {
                direction: "publish",
                subject: ">".into()
            })
        );
    }
}
