use super::*;
use crate::ceiling::Ceiling;
use portcullis_runtime::bindings::portcullis::authenticator::types::{
    Limits, Permission, ResponsePermission,
};

fn grant(account: &str) -> Grant {
    Grant {
        account: account.into(),
        display_name: Some("alice".into()),
        publish: Permission {
            allow: vec!["a.>".into()],
            deny: vec![],
        },
        subscribe: Permission {
            allow: vec!["_INBOX.>".into(), "a.*.c".into()],
            deny: vec!["a.secret".into()],
        },
        response: Some(ResponsePermission {
            max: 1,
            ttl_ms: 1500,
        }),
        expires_in_secs: None,
        tags: vec!["Team:Blue".into()],
        source_cidrs: vec![],
        connection_types: vec![],
        limits: Limits {
            subs: None,
            data: Some(1024),
            payload: None,
        },
    }
}

fn policy() -> PluginPolicy {
    PluginPolicy {
        accounts: vec!["APP1".into()],
        max_expiry: MaxExpiry::Limited(Duration::from_secs(3600)),
        ceiling: Ceiling::default(),
    }
}

fn request(host: &str, kind: &str, client_type: &str) -> AuthorizationRequest {
    let mut r = AuthorizationRequest::default();
    r.client_info.host = host.into();
    r.client_info.kind = kind.into();
    r.client_info.client_type = client_type.into();
    r
}

fn std_request() -> AuthorizationRequest {
    request("127.0.0.1", "Client", "nats")
}

#[test]
fn a_good_grant_becomes_user_claims() {
    let ok = check(&grant("APP1"), &policy(), &std_request(), 1000).unwrap();
    assert_eq!(ok.account, "APP1");
    assert_eq!(ok.name, "alice");
    assert_eq!(
        ok.expires_at,
        Some(1000 + 3600),
        "no expiry asked: the plugin's maximum"
    );
    assert_eq!(ok.user.subs, -1);
    assert_eq!(ok.user.data, 1024);
    assert_eq!(
        ok.user.response.as_ref().unwrap().ttl,
        1_500_000_000,
        "ttl in nanoseconds"
    );
    assert_eq!(ok.user.tags, vec!["team:blue"], "NATS tags are lower case");
}

#[test]
fn rejects_account_outside_the_plugins_list() {
    let err = check(&grant("SYS"), &policy(), &std_request(), 0).unwrap_err();
    assert_eq!(err, Violation::AccountNotAllowed("SYS".into()));
}

#[test]
fn rejects_expiry_beyond_the_maximum() {
    let mut g = grant("APP1");
    g.expires_in_secs = Some(100 * 365 * 24 * 3600);
    assert!(matches!(
        check(&g, &policy(), &std_request(), 0),
        Err(Violation::ExpiryTooLong { .. })
    ));
    g.expires_in_secs = Some(0);
    assert_eq!(
        check(&g, &policy(), &std_request(), 0).unwrap_err(),
        Violation::ExpiryZero
    );
    g.expires_in_secs = Some(60);
    assert_eq!(
        check(&g, &policy(), &std_request(), 10).unwrap().expires_at,
        Some(70)
    );
}

#[test]
fn unlimited_expiry_issues_no_exp_unless_the_grant_asks_for_one() {
    let unlimited = PluginPolicy {
        max_expiry: MaxExpiry::Unlimited,
        ..policy()
    };
    let mut g = grant("APP1");
    assert_eq!(
        check(&g, &unlimited, &std_request(), 10)
            .unwrap()
            .expires_at,
        None,
        "no expiry asked: no exp"
    );
    g.expires_in_secs = Some(100 * 365 * 24 * 3600);
    assert_eq!(
        check(&g, &unlimited, &std_request(), 10)
            .unwrap()
            .expires_at,
        Some(10 + 100 * 365 * 24 * 3600),
        "an expiry asked for is kept, however long"
    );
    g.expires_in_secs = Some(0);
    assert_eq!(
        check(&g, &unlimited, &std_request(), 10).unwrap_err(),
        Violation::ExpiryZero
    );
}

#[test]
fn rejects_malformed_subjects() {
    for bad in [
        "",
        "a..b",
        ".a",
        "a.",
        "has space",
        "tab\there",
        ">.after",
        "a.b>",
        "a*.b",
        &"x".repeat(600),
    ] {
        let mut g = grant("APP1");
        g.subscribe.allow = vec![bad.to_owned()];
        assert!(
            matches!(
                check(&g, &policy(), &std_request(), 0),
                Err(Violation::Subject { .. })
            ),
            "{bad:?}"
        );
    }
    for good in [
        "a",
        "a.b.c",
        "a.*.c",
        "a.>",
        ">",
        "*",
        "_INBOX.>",
        "$JS.API.>",
    ] {
        assert!(check_subject(good).is_ok(), "{good:?}");
    }
}

#[test]
fn rejects_huge_subject_lists_and_tag_lists() {
    let mut g = grant("APP1");
    g.publish.allow = (0..MAX_SUBJECTS + 1).map(|i| format!("s.{i}")).collect();
    assert!(matches!(
        check(&g, &policy(), &std_request(), 0),
        Err(Violation::TooMany {
            what: "subjects",
            ..
        })
    ));
    let mut g = grant("APP1");
    g.tags = (0..MAX_LIST + 1).map(|i| format!("t{i}")).collect();
    assert!(matches!(
        check(&g, &policy(), &std_request(), 0),
        Err(Violation::TooMany { what: "tags", .. })
    ));
    let mut g = grant("APP1");
    g.display_name = Some("evil\nname".into());
    assert!(matches!(
        check(&g, &policy(), &std_request(), 0),
        Err(Violation::Text { .. })
    ));
}

#[test]
fn enforces_source_networks_that_the_server_does_not() {
    let mut g = grant("APP1");
    g.source_cidrs = vec!["10.0.0.0/8".into(), "127.0.0.1".into()];
    assert!(check(&g, &policy(), &request("127.0.0.1", "Client", "nats"), 0).is_ok());
    assert!(check(&g, &policy(), &request("10.1.2.3", "Client", "nats"), 0).is_ok());
    assert!(
        check(
            &g,
            &policy(),
            &request("::ffff:10.1.2.3", "Client", "nats"),
            0
        )
        .is_ok()
    );
    assert_eq!(
        check(&g, &policy(), &request("192.168.1.1", "Client", "nats"), 0).unwrap_err(),
        Violation::SourceNotAllowed("192.168.1.1".into())
    );
    g.source_cidrs = vec!["::1/128".into()];
    assert!(check(&g, &policy(), &request("::1", "Client", "nats"), 0).is_ok());
    assert!(check(&g, &policy(), &request("127.0.0.1", "Client", "nats"), 0).is_err());
    g.source_cidrs = vec!["10.0.0.0/33".into()];
    assert!(matches!(
        check(&g, &policy(), &std_request(), 0),
        Err(Violation::Cidr(_))
    ));
}

#[test]
fn enforces_connection_types_that_the_server_does_not() {
    let mut g = grant("APP1");
    g.connection_types = vec!["WEBSOCKET".into()];
    assert!(
        check(
            &g,
            &policy(),
            &request("127.0.0.1", "Client", "websocket"),
            0
        )
        .is_ok()
    );
    assert_eq!(
        check(&g, &policy(), &std_request(), 0).unwrap_err(),
        Violation::ConnectionTypeNotAllowed("STANDARD".into())
    );
    g.connection_types = vec!["TELNET".into()];
    assert!(matches!(
        check(&g, &policy(), &std_request(), 0),
        Err(Violation::UnknownConnectionType(_))
    ));
}

#[test]
fn classifies_connections_as_far_as_the_request_tells() {
    assert_eq!(connection_types(&std_request()), ["STANDARD"]);
    assert_eq!(
        connection_types(&request("", "Client", "nats")),
        ["IN_PROCESS"]
    );
    assert_eq!(
        connection_types(&request("h", "Client", "websocket")),
        ["WEBSOCKET"]
    );
    assert_eq!(
        connection_types(&request("h", "Client", "mqtt")),
        ["MQTT", "MQTT_WS"]
    );
    assert_eq!(
        connection_types(&request("h", "Leafnode", "")),
        ["LEAFNODE", "LEAFNODE_WS"]
    );
    assert!(connection_types(&request("h", "JetStream", "")).is_empty());
}

#[test]
fn an_in_process_client_is_not_a_standard_one() {
    let mut g = grant("APP1");
    g.connection_types = vec!["STANDARD".into()];
    assert_eq!(
        check(&g, &policy(), &request("", "Client", "nats"), 0).unwrap_err(),
        Violation::ConnectionTypeNotAllowed("IN_PROCESS".into())
    );
    g.connection_types = vec!["IN_PROCESS".into()];
    assert!(check(&g, &policy(), &request("", "Client", "nats"), 0).is_ok());
    assert!(check(&g, &policy(), &std_request(), 0).is_err());
}

#[test]
fn mqtt_over_websocket_cannot_pass_for_plain_mqtt() {
    let mut g = grant("APP1");
    g.connection_types = vec!["MQTT".into()];
    let mqtt = request("h", "Client", "mqtt");
    assert_eq!(
        check(&g, &policy(), &mqtt, 0).unwrap_err(),
        Violation::ConnectionTypeAmbiguous("MQTT and MQTT_WS".into())
    );
    g.connection_types = vec!["MQTT".into(), "MQTT_WS".into()];
    assert!(check(&g, &policy(), &mqtt, 0).is_ok());
}

#[test]
fn a_leafnode_over_websocket_cannot_pass_for_a_plain_one() {
    let mut g = grant("APP1");
    g.connection_types = vec!["LEAFNODE".into()];
    let leaf = request("h", "Leafnode", "");
    assert!(matches!(
        check(&g, &policy(), &leaf, 0),
        Err(Violation::ConnectionTypeAmbiguous(_))
    ));
    g.connection_types = vec!["LEAFNODE".into(), "LEAFNODE_WS".into()];
    assert!(check(&g, &policy(), &leaf, 0).is_ok());
}

#[test]
fn internal_connections_match_no_granted_type() {
    let mut g = grant("APP1");
    g.connection_types = vec!["STANDARD".into()];
    assert_eq!(
        check(&g, &policy(), &request("h", "JetStream", ""), 0).unwrap_err(),
        Violation::ConnectionTypeUnknown("JetStream".into())
    );
}

#[test]
fn rejects_negative_limits() {
    let mut g = grant("APP1");
    g.limits.payload = Some(-5);
    assert!(matches!(
        check(&g, &policy(), &std_request(), 0),
        Err(Violation::Limit {
            what: "payload",
            ..
        })
    ));
}

#[test]
fn a_grant_past_the_plugins_ceiling_is_refused_not_trimmed() {
    let mut p = policy();
    p.ceiling = Ceiling {
        publish: Some(vec!["app.>".into()]),
        subscribe: Some(vec!["app.>".into(), "_INBOX.>".into()]),
    };
    let mut g = grant("APP1");
    g.publish.allow = vec!["app.orders".into()];
    g.subscribe.allow = vec!["app.>".into(), "_INBOX.>".into()];
    assert!(check(&g, &p, &std_request(), 0).is_ok());
    g.subscribe.allow.push("$SYS.>".into());
    assert_eq!(
        check(&g, &p, &std_request(), 0).unwrap_err(),
        Violation::OutsideCeiling {
            direction: "subscribe",
            subject: "$SYS.>".into()
        }
    );
    // No allow list is "everything": past any ceiling short of `>`.
    g.subscribe.allow.clear();
    assert!(matches!(
        check(&g, &p, &std_request(), 0),
        Err(Violation::OutsideCeiling { subject, .. }) if subject == ">"
    ));
}
