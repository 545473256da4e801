//! `portcullis init --mode operator`: the nats-by-example decentralized
//! auth-callout deployment without nsc. An operator with a signing key and
//! strict signing-key usage, SYS, an AUTH account whose JWT delegates
//! logins to Portcullis, APP1 and APP2 with signing keys, the sentinel and
//! auth user creds, and a nats-server.conf with a MEMORY resolver (or a
//! full one, `--resolver full`).
//!
//! Besides the users Portcullis decides, it writes users the server
//! decides alone, as nats-by-example's setup has them: `sys.creds` (SYS,
//! for pushing accounts and monitoring) and `app1.creds` / `app2.creds`
//! (APP1 and APP2 users with their own JWT). nats-server calls out only
//! for users of the account that delegates (AUTH); a user whose JWT is
//! issued by another account is checked against that account's JWT and
//! never reaches Portcullis.

use super::{InitError, InitOptions, Resolver, portcullis_common};
use nkeys::{KeyPair, XKey};
use portcullis::deployment::{USERS_JSON, quoted};
use portcullis_protocol::accounts::{
    self, Account, ExternalAuthorization, Operator, OperatorClaims, SigningKey,
};
use portcullis_protocol::claims::CLAIMS_VERSION;
use portcullis_protocol::jwt;
use std::path::Path;

/// Accounts users may be placed in.
const APP_ACCOUNTS: [&str; 2] = ["APP1", "APP2"];

/// `allowed_accounts` entry that lets the callout place users in any
/// account (jwt.AnyAccount; nats-server honours it only as the sole entry).
pub const ANY_ACCOUNT: &str = "*";

struct NamedAccount {
    name: &'static str,
    key: KeyPair,
    signing: KeyPair,
}

impl NamedAccount {
    fn new(name: &'static str) -> Self {
        NamedAccount {
            name,
            key: KeyPair::new_account(),
            signing: KeyPair::new_account(),
        }
    }
}

/// The files of an operator-mode deployment: (relative path, content).
/// `jwt_dir` is the full resolver's directory (absolute).
pub fn files(options: &InitOptions, jwt_dir: &Path) -> Result<Vec<(String, String)>, InitError> {
    let now = portcullis_protocol::time::unix_now();
    let err = |e: jwt::JwtError| InitError::Keys(e.to_string());
    let seed = |kp: &KeyPair| kp.seed().map_err(|e| InitError::Keys(e.to_string()));

    let operator = KeyPair::new_operator();
    let operator_signing = KeyPair::new_operator();
    let sys = NamedAccount::new("SYS");
    let auth = NamedAccount::new("AUTH");
    let apps: Vec<NamedAccount> = APP_ACCOUNTS.iter().map(|n| NamedAccount::new(n)).collect();
    let xkey = options.xkey.then(XKey::new);
    let auth_user = KeyPair::new_user();
    let sentinel = KeyPair::new_user();
    let sys_user = KeyPair::new_user();

    let mut operator_claims = OperatorClaims {
        iat: now,
        iss: operator.public_key(),
        sub: operator.public_key(),
        name: "portcullis".into(),
        nats: Operator {
            signing_keys: vec![operator_signing.public_key()],
            system_account: sys.key.public_key(),
            strict_signing_key_usage: true,
            claim_type: "operator".into(),
            version: CLAIMS_VERSION,
        },
        ..Default::default()
    };
    let operator_jwt = jwt::encode(&mut operator_claims, |c| &mut c.jti, &operator).map_err(err)?;

    let account_jwt = |account: &NamedAccount, authorization: Option<ExternalAuthorization>| {
        let body = Account {
            signing_keys: vec![SigningKey::Plain(account.signing.public_key())],
            authorization,
            ..Account::default()
        };
        accounts::account_jwt(
            account.name,
            &account.key.public_key(),
            body,
            &operator_signing,
            now,
        )
        .map_err(err)
    };
    let auth_jwt = account_jwt(
        &auth,
        Some(ExternalAuthorization {
            auth_users: vec![auth_user.public_key()],
            allowed_accounts: if options.any_account {
                vec![ANY_ACCOUNT.to_owned()]
            } else {
                apps.iter().map(|a| a.key.public_key()).collect()
            },
            xkey: xkey.as_ref().map(|x| x.public_key()).unwrap_or_default(),
        }),
    )?;
    let mut jwts = vec![(&sys, account_jwt(&sys, None)?), (&auth, auth_jwt)];
    for app in &apps {
        jwts.push((app, account_jwt(app, None)?));
    }

    let auth_pub = auth.key.public_key();
    // Every user JWT is issued by its account's signing key, as nsc does
    // once an account has one.
    let creds = |name: &str,
                 user: &KeyPair,
                 account: &NamedAccount,
                 deny_all: bool|
     -> Result<String, InitError> {
        let token = accounts::creds_user_jwt(
            name,
            user,
            &account.key.public_key(),
            &account.signing,
            deny_all,
            now,
        )
        .map_err(err)?;
        Ok(accounts::creds_file(&token, &seed(user)?))
    };

    let mut files = vec![
        ("keys/operator.nk".to_owned(), seed(&operator)? + "\n"),
        (
            "keys/operator-signing.nk".to_owned(),
            seed(&operator_signing)? + "\n",
        ),
    ];
    for (account, token) in &jwts {
        files.push((
            format!("keys/{}.nk", account.name),
            seed(&account.key)? + "\n",
        ));
        files.push((
            format!("keys/{}-signing.nk", account.name),
            seed(&account.signing)? + "\n",
        ));
        files.push((
            format!("accounts/{}.jwt", account.name),
            format!("{token}\n"),
        ));
    }
    if let Some(x) = &xkey {
        files.push((
            "keys/xkey.nk".into(),
            x.seed().map_err(|e| InitError::Keys(e.to_string()))? + "\n",
        ));
    }
    files.push((
        "auth.creds".into(),
        creds("auth", &auth_user, &auth, false)?,
    ));
    files.push((
        "sentinel.creds".into(),
        creds("sentinel", &sentinel, &auth, true)?,
    ));
    files.push(("sys.creds".into(), creds("sys", &sys_user, &sys, false)?));
    for app in &apps {
        let name = app.name.to_ascii_lowercase();
        files.push((
            format!("{name}.creds"),
            creds(&name, &KeyPair::new_user(), app, false)?,
        ));
    }

    let preload: String = jwts
        .iter()
        .map(|(a, token)| format!("  # {}\n  {}: {token}\n", a.name, a.key.public_key()))
        .collect();
    let resolver = match options.resolver {
        Resolver::Memory => "resolver: MEMORY\n".to_owned(),
        Resolver::Full => format!(
            r#"# Account JWTs live in `dir`; the preloads below only seed it. Push new or
# changed accounts with sys.creds ($SYS.REQ.CLAIMS.UPDATE, as `nsc push` does).
resolver: {{
  type: full
  dir: {dir}
  allow_delete: false
  interval: "2m"
}}
"#,
            dir = quoted(&jwt_dir.display().to_string()),
        ),
    };
    files.push((
        "nats-server.conf".into(),
        format!(
            r#"# nats-server configuration written by `portcullis init --mode operator`.
# Clients connect with sentinel.creds plus a user/password (or token);
# Portcullis (auth.creds) decides which account they land in. Users with
# their own JWT (app1.creds, app2.creds, sys.creds) are decided by the server.
listen: 127.0.0.1:{port}

operator: {operator_jwt}
system_account: {sys}

{resolver}resolver_preload: {{
{preload}}}
"#,
            port = options.port,
            sys = sys.key.public_key(),
        ),
    ));

    let mut toml = portcullis_common(options, "creds = \"auth.creds\"");
    toml.push_str(&format!(
        r#"
[callout]
mode = "operator"
# A signing key of AUTH signs responses; callout_account names AUTH.
issuer_seed = "keys/AUTH-signing.nk"
callout_account = "{auth_pub}"
{xkey_line}
"#,
        xkey_line = if options.xkey {
            "xkey_seed = \"keys/xkey.nk\""
        } else {
            ""
        },
    ));
    for app in &apps {
        toml.push_str(&format!(
            r#"
[accounts.{name}]
public_key = "{public}"
signing_seed = "keys/{name}-signing.nk"
jwt = "accounts/{name}.jwt"
"#,
            name = app.name,
            public = app.key.public_key(),
        ));
    }
    toml.push_str(&super::plugin_table(options));
    files.push(("portcullis.toml".into(), toml));
    files.push(("users.json".into(), USERS_JSON.to_owned()));
    Ok(files)
}
