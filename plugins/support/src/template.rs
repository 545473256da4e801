//! Templates: `user.{sub}.>` with each `{name}` replaced by a value taken
//! from the credential (a token claim, a certificate field, a key name).
//!
//! In a subject, a value is used only when it is exactly one plain subject
//! token: a `sub` of `*`, `>` or `a.b` would otherwise turn `user.{sub}.>`
//! into a grant over other users' subjects. Such a login is refused, never
//! "cleaned up" into something the operator did not write.

/// Longest value taken into a subject.
const MAX_VALUE: usize = 256;

/// One piece of a parsed template.
#[derive(Debug, PartialEq)]
enum Part<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn parse(template: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("template {template:?}: '}}' without '{{'"));
        }
        if open > 0 {
            parts.push(Part::Text(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("template {template:?}: '{{' without '}}'"))?;
        let name = &after[..close];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        {
            return Err(format!(
                "template {template:?}: variable {name:?} must be letters, digits, '_', '-', '.' or ':'"
            ));
        }
        parts.push(Part::Var(name));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    Ok(parts)
}

/// The variables `template` uses, in order; an error for malformed braces.
pub fn variables(template: &str) -> Result<Vec<&str>, String> {
    Ok(parse(template)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
        .collect())
}

/// Check at configuration time that `template` parses and uses only the
/// variables in `known` (when given).
pub fn check(template: &str, known: Option<&[&str]>) -> Result<(), String> {
    for var in variables(template)? {
        if let Some(known) = known
            && !known.contains(&var)
        {
            return Err(format!(
                "template {template:?}: unknown variable {{{var}}} (known: {})",
                known
                    .iter()
                    .map(|k| format!("{{{k}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// True when `value` can stand in a subject as exactly one token.
pub fn is_subject_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_VALUE
        && !value
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
}

/// Fill a subject template. `lookup` returns a variable's value; a missing
/// variable or a value that is not one plain subject token is an error
/// naming the variable (never the value: it may be a secret).
pub fn subject(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    render(template, lookup, true)
}

/// Fill a free-text template (a display name): values are taken as they are.
pub fn text(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    render(template, lookup, false)
}

fn render(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    in_subject: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    for part in parse(template)? {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Var(name) => {
                let value = lookup(name).ok_or_else(|| format!("{{{name}}} has no value"))?;
                if in_subject && !is_subject_token(&value) {
                    return Err(format!(
                        "{{{name}}} is not usable in a subject (empty, too long, or contains '.', '*', '>' or spaces)"
                    ));
                }
                out.push_str(&value);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "sub" => Some("alice".into()),
            "email" => Some("alice@example.com".into()),
            "wild" => Some("*".into()),
            "tail" => Some(">".into()),
            "dotted" => Some("a.b".into()),
            "empty" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn fills_plain_tokens() {
        assert_eq!(subject("user.{sub}.>", &vars).unwrap(), "user.alice.>");
        assert_eq!(subject("plain.>", &vars).unwrap(), "plain.>");
        assert_eq!(subject("{sub}-{sub}", &vars).unwrap(), "alice-alice");
        assert_eq!(
            text("{email} ({sub})", &vars).unwrap(),
            "alice@example.com (alice)"
        );
    }

    #[test]
    fn refuses_values_that_would_widen_a_subject() {
        for var in ["wild", "tail", "dotted", "empty", "email"] {
            let err = subject(&format!("user.{{{var}}}.>"), &vars).unwrap_err();
            assert!(err.contains(var), "{err}");
        }
        assert!(
            subject("user.{missing}", &vars)
                .unwrap_err()
                .contains("no value")
        );
    }

    #[test]
    fn malformed_templates_and_unknown_variables() {
        assert!(variables("a.{b").is_err());
        assert!(variables("a.}b").is_err());
        assert!(variables("a.{}").is_err());
        assert!(variables("a.{b c}").is_err());
        assert_eq!(variables("x.{a}.{b.c}").unwrap(), ["a", "b.c"]);
        assert!(check("x.{cn}", Some(&["cn"])).is_ok());
        assert!(
            check("x.{nope}", Some(&["cn"]))
                .unwrap_err()
                .contains("{cn}")
        );
    }
}
