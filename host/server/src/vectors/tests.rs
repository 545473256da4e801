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
                timed_out: false,
            },
            VectorResult {
                id: "bob-wrong".into(),
                description: String::new(),
                outcome: Outcome::Fail(vec!["expected deny, got allow into \"APP2\"".into()]),
                elapsed: Duration::from_micros(40),
                timed_out: false,
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

/// Vector files are plugin authors' input: the parser on generated text
/// (bounded, no persistence file) returns a vector or an error that names
/// the file, never a panic.
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    const GOOD_VECTOR: &str = r#"{
      "description": "alice is placed in APP1",
      "request": {"connect_opts": {"user": "alice", "pass": "alice"},
                  "client_info": {"host": "127.0.0.1", "id": 7, "kind": "Client", "type": "nats"}},
      "expect": {"decision": "allow", "account": "APP1"}
    }"#;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            prop_oneof![
                Just("allow".to_owned()),
                Just("deny".to_owned()),
                "[a-z_]{0,12}"
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("request".to_owned()),
                        Just("expect".to_owned()),
                        Just("decision".to_owned()),
                        Just("config".to_owned()),
                        Just("connect_opts".to_owned()),
                        Just("account".to_owned()),
                        "[a-z_]{1,10}",
                    ],
                    inner,
                    0..5,
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn parse(text: &str) -> Result<Vector, VectorError> {
        parse_file(text, Path::new("vectors/generated.json"), None)
    }

    #[test]
    fn the_seed_vector_parses() {
        parse(GOOD_VECTOR).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            if let Err(e) = parse(&text) {
                prop_assert!(e.to_string().contains("generated.json"), "{}", e);
            }
        }

        #[test]
        fn vector_shaped_json_never_panics(value in json()) {
            if let Err(e) = parse(&value.to_string()) {
                prop_assert!(e.to_string().contains("generated.json"), "{}", e);
            }
        }

        #[test]
        fn a_good_vector_with_one_character_changed_never_panics(pos in any::<prop::sample::Index>(), ch in any::<char>()) {
            let mut chars: Vec<char> = GOOD_VECTOR.chars().collect();
            let i = pos.index(chars.len());
            chars[i] = ch;
            let edited: String = chars.into_iter().collect();
            let _ = parse(&edited);
        }
    }
}
