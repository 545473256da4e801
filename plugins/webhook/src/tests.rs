//! Native unit tests: the service is a stand-in behind
//! `portcullis_sdk::http::mock`.

use super::*;
use portcullis_sdk::http::{Error, Response, mock};
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;

const URL: &str = "https://authz.example.com/login";

fn webhook(extra: Value) -> Webhook {
    let mut config = json!({ "url": URL });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    Webhook::configure(&config.to_string()).unwrap()
}

fn login() -> AuthRequest {
    let mut r = AuthRequest::with_password("alice", "s3cret-pw");
    r.connect.token = Some("tok-123".into());
    r.client.host = "127.0.0.1".into();
    r.client.name = "billing".into();
    r.server.name = "n1".into();
    r
}

/// Answer every request with `answer`; the requests sent, for inspection.
fn service(answer: Result<Response, Error>) -> Rc<RefCell<Vec<Request>>> {
    let sent = Rc::new(RefCell::new(Vec::new()));
    let log = sent.clone();
    mock(move |r| {
        log.borrow_mut().push(r.clone());
        answer.clone()
    });
    sent
}

fn json_answer(status: u16, body: Value) -> Result<Response, Error> {
    Ok(Response {
        status,
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
    })
}

#[test]
fn the_listed_fields_are_sent_and_credentials_only_when_configured() {
    let sent = service(json_answer(200, json!({"decision": "abstain"})));
    let plugin = webhook(json!({"fields": ["user", "client.host", "client.name", "server.name"]}));
    assert!(matches!(plugin.authenticate(&login()), Decision::Abstain));
    let request = sent.borrow()[0].clone();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, URL);
    assert_eq!(request.timeout_ms, Some(DEFAULT_TIMEOUT_MS));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"user": "alice", "client": {"host": "127.0.0.1", "name": "billing"},
               "server": {"name": "n1"}})
    );
    let text = String::from_utf8(request.body).unwrap();
    assert!(
        !text.contains("s3cret-pw") && !text.contains("tok-123"),
        "{text}"
    );

    let sent = service(json_answer(200, json!({"decision": "abstain"})));
    let plugin = webhook(json!({"send_password": true, "send_token": true}));
    plugin.authenticate(&login());
    let body: Value = serde_json::from_slice(&sent.borrow()[0].body).unwrap();
    assert_eq!(
        body,
        json!({"user": "alice", "password": "s3cret-pw", "token": "tok-123"})
    );
}

#[test]
fn an_allow_answer_becomes_the_grant() {
    service(json_answer(
        200,
        json!({"decision": "allow", "account": "APP1", "name": "Alice",
               "permissions": {"pub": {"allow": ["app.alice.>"], "deny": ["app.alice.secret"]},
                               "sub": {"allow": ["_INBOX.>"]},
                               "resp": {"max": 1, "ttl": 5_000_000_000u64}},
               "expires_in_secs": 600, "tags": ["via-webhook"]}),
    ));
    let Decision::Allow(grant) = webhook(json!({})).authenticate(&login()) else {
        panic!("not allowed");
    };
    assert_eq!(grant.account, "APP1");
    assert_eq!(grant.display_name.as_deref(), Some("Alice"));
    assert_eq!(grant.publish.allow, ["app.alice.>"]);
    assert_eq!(grant.publish.deny, ["app.alice.secret"]);
    assert_eq!(grant.subscribe.allow, ["_INBOX.>"]);
    assert_eq!(grant.response.map(|r| (r.max, r.ttl_ms)), Some((1, 5000)));
    assert_eq!(grant.expires_in_secs, Some(600));
    assert_eq!(grant.tags, ["via-webhook"]);
}

#[test]
fn deny_and_abstain_answers() {
    service(json_answer(
        200,
        json!({"decision": "deny", "reason": "account locked"}),
    ));
    match webhook(json!({})).authenticate(&login()) {
        Decision::Deny(r) => assert_eq!(r, "denied by the webhook: account locked"),
        _ => panic!("not denied"),
    }
    service(json_answer(200, json!({"decision": "abstain"})));
    assert!(matches!(
        webhook(json!({})).authenticate(&login()),
        Decision::Abstain
    ));
}

#[test]
fn anything_but_a_well_formed_answer_denies_with_the_reason() {
    let cases: Vec<(Result<Response, Error>, &str)> = vec![
        (Err(Error::Timeout), "no answer in time"),
        (
            Err(Error::Denied("not granted".into())),
            "refused by the host",
        ),
        (Err(Error::TooLarge), "response too large"),
        (
            json_answer(500, json!({"decision": "allow", "account": "APP1"})),
            "HTTP status 500",
        ),
        (json_answer(302, json!({})), "HTTP status 302"),
        (
            Ok(Response {
                status: 200,
                body: b"<html>ok</html>".to_vec(),
                ..Response::default()
            }),
            "not a decision",
        ),
        (
            json_answer(200, json!({"decision": "maybe"})),
            "not a decision",
        ),
        (
            json_answer(200, json!({"decision": "allow"})),
            "not a decision",
        ),
        (
            json_answer(200, json!({"decision": "allow", "account": ""})),
            "without an account",
        ),
        (
            json_answer(
                200,
                json!({"decision": "allow", "account": "A", "admin": true}),
            ),
            "not a decision",
        ),
    ];
    for (answer, needle) in cases {
        service(answer);
        match webhook(json!({})).authenticate(&login()) {
            Decision::Deny(r) => {
                assert!(r.contains(needle), "{r:?} lacks {needle:?}");
                assert!(!r.contains("s3cret-pw"), "{r}");
            }
            _ => panic!("not denied for {needle}"),
        }
    }
}

#[test]
fn a_long_reason_is_cut() {
    service(json_answer(
        200,
        json!({"decision": "deny", "reason": "x".repeat(10_000)}),
    ));
    match webhook(json!({})).authenticate(&login()) {
        Decision::Deny(r) => assert!(r.len() < MAX_REASON + 40, "{}", r.len()),
        _ => panic!("not denied"),
    }
}

#[test]
fn configuration_errors() {
    let bad = |config: Value, needle: &str| {
        let err = Webhook::configure(&config.to_string())
            .err()
            .expect("must fail");
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    bad(json!({}), "url");
    bad(json!({"url": "ftp://x/"}), "url: invalid URL");
    bad(json!({"url": URL, "fields": ["password"]}), "send_password");
    bad(
        json!({"url": URL, "fields": ["connect.token"]}),
        "send_password or send_token",
    );
    bad(
        json!({"url": URL, "fields": ["client.secret"]}),
        "unknown field",
    );
    bad(json!({"url": URL, "timeout_ms": 0}), "timeout_ms");
    bad(json!({"url": URL, "headers": {}}), "headers");
}
