//! Forged authorization requests. nats-server itself refuses clients that
//! publish to `$SYS.REQ.USER.AUTH` (even in the callout account), so the
//! forgeries go through the host's complete request path in-process
//! (`Callout::handle`: the exact bytes -> bytes path the NATS service
//! runs); the host answers only what verifies as a request from a server.

use nkeys::{KeyPair, XKey};
use portcullis::callout::HandleError;
use portcullis_protocol::claims::RequestClaims;
use portcullis_protocol::time::unix_now;
use portcullis_protocol::{RequestError, jwt};
use portcullis_tests::{Deployment, Stack, connect_with_events};

/// A fake nats-server: its own signing key and xkey.
struct FakeServer {
    key: KeyPair,
    xkey: XKey,
}

impl FakeServer {
    fn new() -> Self {
        FakeServer {
            key: KeyPair::new_server(),
            xkey: XKey::new(),
        }
    }

    fn claims(&self) -> RequestClaims {
        let mut c = RequestClaims::new(
            &self.key.public_key(),
            &KeyPair::new_user().public_key(),
            unix_now(),
            10,
        );
        c.nats.client_info.host = "127.0.0.1".into();
        c.nats.connect_opts.user = "alice".into();
        c.nats.connect_opts.pass = "alice".into();
        c
    }

    fn sign(&self, mut claims: RequestClaims, signer: &KeyPair) -> String {
        jwt::encode(&mut claims, |c| &mut c.jti, signer).unwrap()
    }

    fn seal(&self, token: &[u8], to: &str) -> Vec<u8> {
        self.xkey
            .seal(token, &XKey::from_public_key(to).unwrap())
            .unwrap()
    }
}

#[tokio::test]
async fn clients_cannot_inject_requests_on_the_callout_subject() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    let options = async_nats::ConnectOptions::with_user_and_password("auth".into(), "auth".into());
    let (client, mut events) = connect_with_events(&stack.server.url(), options).await?;
    client
        .publish("$SYS.REQ.USER.AUTH", "forged".into())
        .await?;
    client.flush().await?;
    events
        .wait_for("Permissions Violation for Publish to \"$SYS.REQ.USER.AUTH\"")
        .await?;
    Ok(())
}

#[tokio::test]
async fn answers_only_requests_that_verify() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let host_xkey = deployment.xkey.as_ref().expect("xkey").public_key();
    let config = deployment.write_host_config(
        &deployment.host_config("nats://127.0.0.1:1", &deployment.static_users()),
    )?;
    let callout = portcullis::host::build(&config).await?;
    let server = FakeServer::new();
    let server_xkey = server.xkey.public_key();

    // Control: a well-formed request is answered with a signed user JWT.
    let claims = server.claims();
    let user_nkey = claims.nats.user_nkey.clone();
    let good = server.seal(server.sign(claims, &server.key).as_bytes(), &host_xkey);
    let answer = callout.handle(Some(&server_xkey), &good).await?;
    let opened = server
        .xkey
        .open(&answer, &XKey::from_public_key(&host_xkey)?)?;
    let response: serde_json::Value = jwt::decode_verified(std::str::from_utf8(&opened)?)?;
    assert_eq!(response["sub"], user_nkey.as_str());
    assert_eq!(response["aud"], server.key.public_key().as_str());
    assert_eq!(response["iss"], deployment.issuer.public_key().as_str());
    let user: serde_json::Value =
        jwt::decode_verified(response["nats"]["jwt"].as_str().expect("user JWT"))?;
    assert_eq!(user["aud"], "APP1");
    assert_eq!(user["sub"], user_nkey.as_str());

    let token = |edit: fn(&mut RequestClaims)| {
        let mut c = server.claims();
        edit(&mut c);
        server.sign(c, &server.key)
    };
    let tampered = {
        let t = token(|_| {});
        let other = token(|c| c.nats.connect_opts.user = "root".into());
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[1] = other.split('.').nth(1).expect("claims");
        parts.join(".")
    };
    let account_signed = {
        let account = KeyPair::new_account();
        let mut c = server.claims();
        c.iss = account.public_key();
        c.nats.server_id.id = account.public_key();
        server.sign(c, &account)
    };
    type Expect = fn(&RequestError) -> bool;
    let refused: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "tampered claims",
            server.seal(tampered.as_bytes(), &host_xkey),
            |e| matches!(e, RequestError::Jwt(jwt::JwtError::Signature)),
        ),
        (
            "wrong audience",
            server.seal(
                token(|c| c.aud = "someone-else".into()).as_bytes(),
                &host_xkey,
            ),
            |e| matches!(e, RequestError::Audience(_)),
        ),
        (
            "expired",
            server.seal(token(|c| c.exp = unix_now() - 60).as_bytes(), &host_xkey),
            |e| matches!(e, RequestError::Expired { .. }),
        ),
        (
            "wrong type",
            server.seal(
                token(|c| c.nats.claim_type = "user".into()).as_bytes(),
                &host_xkey,
            ),
            |e| matches!(e, RequestError::Type(_)),
        ),
        (
            "issuer is not a server",
            server.seal(account_signed.as_bytes(), &host_xkey),
            |e| matches!(e, RequestError::IssuerNotServer(_)),
        ),
        ("garbage body", b"this is not a request".to_vec(), |e| {
            matches!(e, RequestError::Open(_))
        }),
        (
            "sealed for another xkey",
            server.seal(token(|_| {}).as_bytes(), &XKey::new().public_key()),
            |e| matches!(e, RequestError::Open(_)),
        ),
    ];
    for (attack, payload, expected) in refused {
        match callout.handle(Some(&server_xkey), &payload).await {
            Ok(_) => panic!("{attack}: the host answered an unverifiable request"),
            Err(HandleError::Request(e)) => assert!(expected(&e), "{attack}: {e}"),
            Err(e) => panic!("{attack}: {e}"),
        }
    }
    // A plain JWT with the header missing is judged on its own.
    let plain = token(|_| {});
    assert!(
        callout.handle(None, plain.as_bytes()).await.is_ok(),
        "unsealed requests are fine unless pinned"
    );
    Ok(())
}
