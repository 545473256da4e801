use super::*;
use portcullis_runtime::bindings::portcullis::authenticator::types::{
    Limits, Permission, ResponsePermission,
};

fn grant(account: &str) -> Grant {
    Grant {
        account: account.into(),
        display_name: None,
        publish: Permission {
            allow: vec!["bob.>".into()],
            deny: vec![],
        },
        subscribe: Permission {
            allow: vec![],
            deny: vec![],
        },
        response: Some(ResponsePermission { max: 1, ttl_ms: 0 }),
        expires_in_secs: None,
        tags: vec![],
        source_cidrs: vec![],
        connection_types: vec![],
        limits: Limits {
            subs: None,
            data: None,
            payload: None,
        },
    }
}

fn expect(json: &str) -> Expect {
    let e: Expect = serde_json::from_str(json).unwrap();
    e.check().unwrap();
    e
}

#[test]
fn matching_and_differing_grants() {
    let bob = Decision::Allow(grant("APP2"));
    let full = expect(
        r#"{"decision": "allow", "account": "APP2", "publish": {"allow": ["bob.>"]},
            "subscribe": {}, "response": {"max": 1}, "expires_in_secs": null, "tags": []}"#,
    );
    assert_eq!(compare(&full, &bob), Outcome::Pass);
    assert_eq!(
        compare(&expect(r#"{"decision": "allow"}"#), &bob),
        Outcome::Pass
    );

    let Outcome::Fail(diffs) = compare(
        &expect(
            r#"{"decision": "allow", "account": "APP1", "response": null, "publish": {"allow": []}}"#,
        ),
        &bob,
    ) else {
        panic!("must fail");
    };
    assert_eq!(diffs.len(), 3, "{diffs:?}");
    assert!(
        diffs[0].contains("account: expected \"APP1\", got \"APP2\""),
        "{diffs:?}"
    );
    assert!(
        diffs.iter().any(|d| d.starts_with("publish.allow")),
        "{diffs:?}"
    );
    assert!(diffs.iter().any(|d| d.starts_with("response")), "{diffs:?}");
}

#[test]
fn decision_kinds_and_reasons() {
    let deny = Decision::Deny("wrong password for user \"alice\"".into());
    assert_eq!(
        compare(
            &expect(r#"{"decision": "deny", "reason_contains": "wrong password"}"#),
            &deny
        ),
        Outcome::Pass
    );
    let Outcome::Fail(diffs) = compare(
        &expect(r#"{"decision": "deny", "reason_contains": "unknown"}"#),
        &deny,
    ) else {
        panic!("must fail");
    };
    assert!(
        diffs[0].contains("does not contain \"unknown\""),
        "{diffs:?}"
    );
    let Outcome::Fail(diffs) = compare(&expect(r#"{"decision": "abstain"}"#), &deny) else {
        panic!("must fail");
    };
    assert!(
        diffs[0].starts_with("expected abstain, got deny"),
        "{diffs:?}"
    );
    assert_eq!(
        compare(&expect(r#"{"decision": "abstain"}"#), &Decision::Abstain),
        Outcome::Pass
    );
}

#[test]
fn mistakes_in_vectors_are_errors() {
    let e: Expect = serde_json::from_str(r#"{"decision": "deny", "account": "APP1"}"#).unwrap();
    assert!(
        e.check()
            .unwrap_err()
            .contains("expect.account is only compared for \"allow\"")
    );
    let e: Expect =
        serde_json::from_str(r#"{"decision": "allow", "reason_contains": "x"}"#).unwrap();
    assert!(e.check().is_err());
    assert!(serde_json::from_str::<Expect>(r#"{"decision": "allow", "acount": "A"}"#).is_err());
    assert!(serde_json::from_str::<Expect>(r#"{"decision": "Allow"}"#).is_err());
}

#[test]
fn directories_load_in_order_with_their_config() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    assert!(matches!(
        load_dir(dir.path()),
        Err(VectorError::Empty { .. })
    ));
    write(
        "config.json",
        r#"{"alice": {"pass": "alice", "account": "APP1"}}"#,
    );
    write(
        "02-own-config.json",
        r#"{"config": {"x": 1}, "request": {"connect_opts": {"user": "x"}}, "expect": {"decision": "abstain"}}"#,
    );
    write(
        "01-alice.json",
        r#"{"description": "alice", "request": {"connect_opts": {"user": "alice", "pass": "alice"}},
            "expect": {"decision": "allow", "account": "APP1"}}"#,
    );
    write("notes.txt", "not a vector");
    let vectors = load_dir(dir.path()).unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].id, "01-alice");
    assert_eq!(vectors[0].request.connect_opts.user, "alice");
    assert!(vectors[0].config.as_deref().unwrap().contains("alice"));
    assert_eq!(vectors[1].config.as_deref(), Some(r#"{"x":1}"#));

    write(
        "03-broken.json",
        r#"{"expect": {"decision": "deny", "tags": []}}"#,
    );
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("03-broken.json") && err.contains("expect.tags"),
        "{err}"
    );
}

#[test]
fn whole_claims_or_nats_part() {
    let nats = parse_request(serde_json::json!({"connect_opts": {"user": "a"}})).unwrap();
    let whole =
        parse_request(serde_json::json!({"iss": "N", "nats": {"connect_opts": {"user": "a"}}}))
            .unwrap();
    assert_eq!(nats, whole);
    assert_eq!(nats.connect_opts.user, "a");
}

#[test]
fn decisions_print_as_lowercase_tagged_json() {
    let v = serde_json::to_value(DecisionJson::from(&Decision::Allow(grant("APP2")))).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["account"], "APP2");
    assert_eq!(v["publish"]["allow"][0], "bob.>");
    let v = serde_json::to_value(DecisionJson::from(&Decision::Deny("no".into()))).unwrap();
    assert_eq!(v, serde_json::json!({"decision": "deny", "reason": "no"}));
    let v = serde_json::to_value(DecisionJson::from(&Decision::Abstain)).unwrap();
    assert_eq!(v, serde_json::json!({"decision": "abstain"}));
}

#[test]
fn the_table_names_every_vector_and_sums_up() {
    let report = Report {
        results: vec![
            VectorResult {
                id: "alice".into(),
                description: "alice logs in".into(),
                outcome: Outcome::Pass,
                elapsed: Duration::from_micros(40),
            },
            VectorResult {
                id: "bob-wrong".into(),
                description: String::new(),
                outcome: Outcome::Fail(vec!["expected deny, got allow into \"APP2\"".into()]),
                elapsed: Duration::from_micros(40),
            },
        ],
    };
    let table = report.to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("alice ") && l.contains("pass")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("bob-wrong") && l.contains("FAIL")),
        "{table}"
    );
    assert!(table.ends_with("2 vectors: 1 passed, 1 failed"), "{table}");
    assert!(!report.ok());
}
