//! Forged authorization requests. nats-server itself refuses clients that
//! publish to `$SYS.REQ.USER.AUTH` (even in the callout account), so the
//! forgeries go through the host's complete request path in-process
//! (`Callout::handle`: the exact bytes -> bytes path the NATS service
//! runs); the host answers only what verifies as a request from a server.
//! One test does reach the host through NATS: over a service import of
//! the callout subject, the way a misconfigured account would.

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
    let attacks = refused.len();
    for (attack, payload, expected) in refused {
        match callout.handle(Some(&server_xkey), &payload).await {
            Ok(_) => panic!("{attack}: the host answered an unverifiable request"),
            Err(HandleError::Request(e)) => assert!(expected(&e), "{attack}: {e}"),
            Err(e) => panic!("{attack}: {e}"),
        }
    }
    // A server with an xkey seals every request: a well-signed JWT that
    // arrives unsealed did not come from it.
    let plain = token(|_| {});
    match callout.handle(None, plain.as_bytes()).await {
        Ok(_) => panic!("an xkey host answered an unsealed request"),
        Err(HandleError::Request(e)) => {
            assert!(matches!(e, RequestError::Unsealed), "{e}")
        }
        Err(e) => panic!("unsealed: {e}"),
    }
    // Every request that got no answer is counted, as an operator sees it.
    let exposition = callout.metrics().encode();
    assert!(
        exposition.contains(&format!(
            "\nportcullis_requests_unverified_total {}\n",
            attacks + 1
        )),
        "{exposition}"
    );
    Ok(())
}

/// Requests that arrive together have their signatures checked in one
/// batch. A forged one spoils the batch equation, so each is then checked
/// alone: the forged request gets no answer (as a lone forged request:
/// nothing that does not verify as a server's is ever signed for), every
/// other one gets its own decision, a grant or a signed refusal.
#[tokio::test]
async fn a_forged_request_in_a_batch_fails_alone() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let host_xkey = deployment.xkey.as_ref().expect("xkey").public_key();
    let config = deployment.write_host_config(
        &deployment.host_config("nats://127.0.0.1:1", &deployment.static_users()),
    )?;
    let callout = portcullis::host::build(&config).await?;
    let server = FakeServer::new();
    let server_xkey = server.xkey.public_key();
    let request = |user: &str, pass: &str| {
        let mut c = server.claims();
        c.nats.connect_opts.user = user.into();
        c.nats.connect_opts.pass = pass.into();
        c
    };
    // alice's signed claims with bob's password swapped in: the signature
    // no longer matches.
    let forged = {
        let genuine = server.sign(request("alice", "alice"), &server.key);
        let other = server.sign(request("alice", "bob"), &server.key);
        let mut parts: Vec<&str> = genuine.split('.').collect();
        parts[1] = other.split('.').nth(1).expect("claims");
        parts.join(".")
    };
    let batch: Vec<(&str, Vec<u8>)> = vec![
        (
            "alice",
            server.seal(
                server
                    .sign(request("alice", "alice"), &server.key)
                    .as_bytes(),
                &host_xkey,
            ),
        ),
        ("forged", server.seal(forged.as_bytes(), &host_xkey)),
        (
            "bob",
            server.seal(
                server.sign(request("bob", "bob"), &server.key).as_bytes(),
                &host_xkey,
            ),
        ),
        (
            "wrong password",
            server.seal(
                server.sign(request("bob", "alice"), &server.key).as_bytes(),
                &host_xkey,
            ),
        ),
    ];
    let verified = callout.verify_all(
        batch
            .iter()
            .map(|(_, p)| (&p[..], Some(server_xkey.as_str()))),
        unix_now(),
    );
    let mut answers = Vec::new();
    for ((what, _), verified) in batch.iter().zip(verified) {
        match verified {
            Ok(v) => {
                let sealed = callout
                    .answer_verified(v, None, std::time::Instant::now(), unix_now())
                    .await?;
                let opened = server
                    .xkey
                    .open(&sealed, &XKey::from_public_key(&host_xkey)?)?;
                let response: serde_json::Value =
                    jwt::decode_verified(std::str::from_utf8(&opened)?)?;
                answers.push((*what, Some(response)));
            }
            Err(e) => {
                assert!(
                    matches!(e, RequestError::Jwt(jwt::JwtError::Signature)),
                    "{what}: {e}"
                );
                answers.push((*what, None));
            }
        }
    }
    let account = |r: &serde_json::Value| -> anyhow::Result<String> {
        let user: serde_json::Value =
            jwt::decode_verified(r["nats"]["jwt"].as_str().expect("a user JWT"))?;
        Ok(user["aud"].as_str().unwrap_or_default().to_owned())
    };
    let [
        (_, Some(alice)),
        (_, None),
        (_, Some(bob)),
        (_, Some(wrong)),
    ] = &answers[..]
    else {
        panic!("only the forged request goes unanswered: {answers:?}");
    };
    assert_eq!(account(alice)?, "APP1");
    assert_eq!(account(bob)?, "APP2");
    assert!(wrong["nats"]["jwt"].is_null(), "{wrong}");
    assert!(
        wrong["nats"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("denied by plugin")),
        "a signed refusal: {wrong}"
    );
    let exposition = callout.metrics().encode();
    for line in [
        "portcullis_requests_unverified_total 1",
        "portcullis_signature_batches_total 1",
        "portcullis_requests_in_signature_batches_total 4",
    ] {
        assert!(
            exposition.contains(&format!("\n{line}\n")),
            "{line}: {exposition}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn accept_unsealed_lets_a_rollout_answer_unsealed_requests() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let text = deployment
        .host_config("nats://127.0.0.1:1", &deployment.static_users())
        .replace(
            "xkey_seed = \"xkey.nk\"",
            "xkey_seed = \"xkey.nk\"\naccept_unsealed = true",
        );
    let callout = portcullis::host::build(&deployment.write_host_config(&text)?).await?;
    let server = FakeServer::new();
    let plain = server.sign(server.claims(), &server.key);
    let answer = callout.handle(None, plain.as_bytes()).await?;
    let response: serde_json::Value = jwt::decode_verified(std::str::from_utf8(&answer)?)?;
    assert!(response["nats"]["jwt"].is_string(), "{response}");
    // Sealed requests are still opened and answered sealed.
    let host_xkey = deployment.xkey.as_ref().expect("xkey").public_key();
    let sealed = server.seal(
        server.sign(server.claims(), &server.key).as_bytes(),
        &host_xkey,
    );
    let answer = callout
        .handle(Some(&server.xkey.public_key()), &sealed)
        .await?;
    assert!(
        server
            .xkey
            .open(&answer, &XKey::from_public_key(&host_xkey)?)
            .is_ok()
    );
    assert_eq!(callout.metrics().unverified.get(), 0);
    Ok(())
}

/// A server config where APP1 imports the callout subject as a service
/// (`forge.auth`): a misconfiguration that lets every APP1 user put a
/// request in front of the host without any server having made it.
fn server_config_with_import(deployment: &Deployment) -> String {
    let config = deployment.server_config();
    let exported = config.replacen(
        "  AUTH {\n",
        "  AUTH {\n    exports: [ { service: \"$SYS.REQ.USER.AUTH\" } ]\n",
        1,
    );
    let imported = exported.replace(
        "APP1 {}",
        "APP1 { imports: [ { service: { account: AUTH, subject: \"$SYS.REQ.USER.AUTH\" }, to: \"forge.auth\" } ] }",
    );
    assert_ne!(imported, config, "the server config changed shape");
    imported
}

#[tokio::test]
async fn an_unsealed_request_through_a_service_import_gets_no_answer_from_an_xkey_host()
-> anyhow::Result<()> {
    use futures::StreamExt;
    let deployment = Deployment::new(true)?;
    let server = portcullis_tests::NatsServer::start(&server_config_with_import(&deployment))?;
    let config = deployment
        .write_host_config(&deployment.host_config(&server.url(), &deployment.static_users()))?;
    let host = portcullis_tests::Host::start(config).await?;

    // alice is a legitimate APP1 user; she makes up a server and a login.
    let alice = portcullis_tests::login(&server.url(), "alice", "alice").await?;
    let forger = FakeServer::new();
    let forged = forger.sign(forger.claims(), &forger.key);
    let inbox = alice.new_inbox();
    let mut answers = alice.subscribe(inbox.clone()).await?;
    let before = host.metrics.unverified.get();
    alice
        .publish_with_reply("forge.auth", inbox, forged.into())
        .await?;
    alice.flush().await?;

    let deadline = tokio::time::Instant::now() + portcullis_tests::WAIT;
    loop {
        if let Ok(Some(answer)) =
            tokio::time::timeout(std::time::Duration::from_millis(20), answers.next()).await
        {
            let text = String::from_utf8_lossy(&answer.payload);
            panic!("the host answered a request no server sealed: {text}");
        }
        if host.metrics.unverified.get() > before {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the forged request was neither answered nor counted as unverified"
        );
    }
    Ok(())
}

#[tokio::test]
async fn accept_unsealed_is_warned_about_once_at_start() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let server = portcullis_tests::NatsServer::start(&deployment.server_config())?;
    let text = deployment
        .host_config(&server.url(), &deployment.static_users())
        .replace(
            "xkey_seed = \"xkey.nk\"",
            "xkey_seed = \"xkey.nk\"\naccept_unsealed = true",
        );
    deployment.write_host_config(&text)?;
    // Ready means serving: the start-up lines are all in.
    let host =
        portcullis_tests::HostProcess::start(&deployment.dir.path().join("portcullis.toml"))?;
    let log = host.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accept_unsealed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains(" WARN "), "{log}");
    Ok(())
}

/// `[callout] servers` and `server_xkeys` pin which servers the host
/// answers at all: any server key signs a valid request, and any xkey
/// seals one, so without the pins a server of another cluster (or a key
/// an attacker generated) would be answered. A request signed by a key
/// outside `servers`, one sealed by an xkey outside `server_xkeys`, and
/// an unsealed one get no answer, and each is counted as unverified.
#[tokio::test]
async fn requests_from_servers_outside_the_pinned_keys_get_no_answer() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let pinned = FakeServer::new();
    let text = deployment
        .host_config("nats://127.0.0.1:1", &deployment.static_users())
        .replace(
            "xkey_seed = \"xkey.nk\"",
            &format!(
                "xkey_seed = \"xkey.nk\"\nservers = [\"{}\"]\nserver_xkeys = [\"{}\"]",
                pinned.key.public_key(),
                pinned.xkey.public_key()
            ),
        );
    assert!(
        text.contains("server_xkeys"),
        "the host config changed shape"
    );
    let callout = portcullis::host::build(&deployment.write_host_config(&text)?).await?;
    let host_xkey = deployment.xkey.as_ref().expect("xkey").public_key();

    // The pinned server is answered.
    let sealed = pinned.seal(
        pinned.sign(pinned.claims(), &pinned.key).as_bytes(),
        &host_xkey,
    );
    callout
        .handle(Some(&pinned.xkey.public_key()), &sealed)
        .await?;

    // Another server key, sealing with the pinned server's xkey (a
    // stolen or shared xkey must not be enough).
    let stranger_key = FakeServer {
        key: KeyPair::new_server(),
        xkey: XKey::from_seed(&pinned.xkey.seed()?)?,
    };
    let by_stranger_key = stranger_key.seal(
        stranger_key
            .sign(stranger_key.claims(), &stranger_key.key)
            .as_bytes(),
        &host_xkey,
    );
    // The pinned server key, sealed by an xkey outside server_xkeys.
    let stranger_xkey = FakeServer {
        key: KeyPair::from_seed(&pinned.key.seed()?)?,
        xkey: XKey::new(),
    };
    let by_stranger_xkey = stranger_xkey.seal(
        stranger_xkey
            .sign(stranger_xkey.claims(), &stranger_xkey.key)
            .as_bytes(),
        &host_xkey,
    );
    let unsealed = pinned.sign(pinned.claims(), &pinned.key);

    type Expect = fn(&RequestError) -> bool;
    let refused: Vec<(&str, Option<String>, Vec<u8>, Expect)> = vec![
        (
            "signed by a server key not in servers",
            Some(pinned.xkey.public_key()),
            by_stranger_key,
            |e| matches!(e, RequestError::ServerNotPinned(_)),
        ),
        (
            "sealed by a server xkey not in server_xkeys",
            Some(stranger_xkey.xkey.public_key()),
            by_stranger_xkey,
            |e| matches!(e, RequestError::ServerXkeyNotPinned(_)),
        ),
        (
            "not sealed although server_xkeys requires it",
            None,
            unsealed.into_bytes(),
            |e| matches!(e, RequestError::NotSealed),
        ),
    ];
    let attacks = refused.len() as u64;
    for (attack, header, payload, expected) in refused {
        match callout.handle(header.as_deref(), &payload).await {
            Ok(_) => panic!("{attack}: the host answered"),
            Err(HandleError::Request(e)) => assert!(expected(&e), "{attack}: {e}"),
            Err(e) => panic!("{attack}: {e}"),
        }
    }
    assert_eq!(callout.metrics().unverified.get(), attacks);
    Ok(())
}
