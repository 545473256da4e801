//! Precedence and nats CLI context parsing, against a temporary config
//! directory given as `XDG_CONFIG_HOME` in an [`Env`] value: the process
//! environment is never read or changed.

use super::*;

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("xdg/nats/context")).expect("context dir");
        Home { dir }
    }

    fn env(&self) -> Env {
        Env {
            xdg_config_home: Some(self.dir.path().join("xdg").into()),
            home: Some(self.dir.path().join("home").into()),
            ..Env::default()
        }
    }

    fn context(&self, name: &str, json: &str) {
        std::fs::write(
            self.dir
                .path()
                .join(format!("xdg/nats/context/{name}.json")),
            json,
        )
        .expect("context file");
    }

    fn select(&self, name: &str) {
        std::fs::write(
            self.dir.path().join("xdg/nats/context.txt"),
            format!("{name}\n"),
        )
        .expect("context.txt");
    }
}

fn config(json: serde_json::Value) -> NatsConfig {
    serde_json::from_value(json).expect("a [nats] section")
}

fn user_password(user: &str, password: &str) -> Option<Auth> {
    Some(Auth::UserPassword {
        user: user.into(),
        password: Secret::new(password),
    })
}

/// A context as `nats context add` writes it: every field present, most
/// of them empty.
const PROD: &str = r#"{
  "description": "production cluster",
  "url": "nats://10.0.0.1:4222, nats://10.0.0.2:4222",
  "socks_proxy": "",
  "token": "",
  "user": "ops",
  "password": "s3cret",
  "creds": "",
  "nkey": "",
  "cert": "~/certs/client.pem",
  "key": "~/certs/client.key",
  "ca": "/etc/nats/ca.pem",
  "nsc": "",
  "jetstream_domain": "",
  "jetstream_api_prefix": "",
  "jetstream_event_prefix": "",
  "inbox_prefix": "",
  "user_jwt": "",
  "color_scheme": "",
  "tls_first": false,
  "windows_cert_store": "",
  "windows_cert_match_by": "",
  "windows_cert_match": "",
  "windows_ca_certs_match": null
}"#;

#[test]
fn with_nothing_given_the_nats_cli_default_url_is_used() {
    let home = Home::new();
    let r = resolve(&NatsFlags::default(), &home.env(), None).unwrap();
    assert_eq!(r.servers, vec![DEFAULT_URL]);
    assert_eq!(r.servers_from, Origin::Default);
    assert!(r.auth.is_none());
}

#[test]
fn a_context_file_is_read_field_by_field() {
    let home = Home::new();
    home.context("prod", PROD);
    let flags = NatsFlags {
        context: Some("prod".into()),
        ..NatsFlags::default()
    };
    let r = resolve(&flags, &home.env(), None).unwrap();
    assert_eq!(
        r.servers,
        vec!["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
    );
    assert_eq!(r.servers_from, Origin::Context("prod".into()));
    assert_eq!(r.auth, user_password("ops", "s3cret"));
    let certs = home.dir.path().join("home/certs");
    assert_eq!(
        r.tls.client,
        Some((certs.join("client.pem"), certs.join("client.key")))
    );
    assert_eq!(r.tls.ca, Some(PathBuf::from("/etc/nats/ca.pem")));
    assert_eq!(
        r.context,
        Some(("prod".into(), "production cluster".into()))
    );
}

#[test]
fn flags_beat_the_environment_which_beats_a_context_which_beats_the_config() {
    let home = Home::new();
    home.context("prod", PROD);
    let toml = config(serde_json::json!({
        "servers": ["nats://127.0.0.1:1"], "user": "host", "password": "hostpw"
    }));
    let flags = NatsFlags {
        server: Some("nats://127.0.0.1:3".into()),
        ..NatsFlags::default()
    };
    let env = Env {
        url: Some("nats://127.0.0.1:2".into()),
        context: Some("prod".into()),
        creds: Some("/env.creds".into()),
        ..home.env()
    };
    let r = resolve(&flags, &env, Some(&toml)).unwrap();
    assert_eq!(r.servers, vec!["nats://127.0.0.1:3"]);
    assert_eq!(r.servers_from, Origin::Flags);
    assert_eq!(r.auth, Some(Auth::Creds("/env.creds".into())));

    let r = resolve(&NatsFlags::default(), &env, Some(&toml)).unwrap();
    assert_eq!(r.servers, vec!["nats://127.0.0.1:2"]);
    assert_eq!(r.servers_from, Origin::Env);

    let env = Env {
        context: Some("prod".into()),
        ..home.env()
    };
    let r = resolve(&NatsFlags::default(), &env, Some(&toml)).unwrap();
    assert_eq!(r.servers_from, Origin::Context("prod".into()));
    assert_eq!(r.auth, user_password("ops", "s3cret"));

    let r = resolve(&NatsFlags::default(), &home.env(), Some(&toml)).unwrap();
    assert_eq!(r.servers, vec!["nats://127.0.0.1:1"]);
    assert_eq!(r.servers_from, Origin::Config);
    assert_eq!(r.auth, user_password("host", "hostpw"));
}

#[test]
fn credentials_are_taken_whole_from_one_source() {
    // --creds on the command line never combines with the config's
    // password, and --user takes its password from NATS_PASSWORD.
    let toml = config(serde_json::json!({
        "servers": ["nats://127.0.0.1:1"], "user": "host", "password": "hostpw"
    }));
    let home = Home::new();
    let flags = NatsFlags {
        creds: Some("/ops.creds".into()),
        ..NatsFlags::default()
    };
    let r = resolve(&flags, &home.env(), Some(&toml)).unwrap();
    assert_eq!(r.auth, Some(Auth::Creds("/ops.creds".into())));

    let flags = NatsFlags {
        user: Some("ops".into()),
        ..NatsFlags::default()
    };
    let env = Env {
        password: Some(Secret::new("from-env")),
        ..home.env()
    };
    let r = resolve(&flags, &env, Some(&toml)).unwrap();
    assert_eq!(r.auth, user_password("ops", "from-env"));
    let missing = resolve(&flags, &home.env(), None).unwrap_err();
    assert!(matches!(
        missing,
        TargetError::UserWithoutPassword("--user")
    ));
}

#[test]
fn the_selected_context_applies_only_without_a_config_file() {
    let home = Home::new();
    home.context("prod", PROD);
    home.select("prod");
    let r = resolve(&NatsFlags::default(), &home.env(), None).unwrap();
    assert_eq!(r.servers_from, Origin::Context("prod".into()));

    let toml = config(serde_json::json!({ "servers": ["nats://127.0.0.1:1"] }));
    let r = resolve(&NatsFlags::default(), &home.env(), Some(&toml)).unwrap();
    assert_eq!(r.servers_from, Origin::Config);
    assert_eq!(r.auth, None);
}

#[test]
fn a_context_user_without_a_password_is_a_token_as_nats_reads_it() {
    let home = Home::new();
    home.context("tok", r#"{"user": "s3cret-token", "password": ""}"#);
    let flags = NatsFlags {
        context: Some("tok".into()),
        ..NatsFlags::default()
    };
    let r = resolve(&flags, &home.env(), None).unwrap();
    assert_eq!(r.auth, Some(Auth::Token(Secret::new("s3cret-token"))));
}

#[test]
fn contexts_live_under_an_absolute_xdg_config_home_else_home() {
    let env = Env {
        xdg_config_home: Some("/x".into()),
        home: Some("/h".into()),
        ..Env::default()
    };
    assert_eq!(nats_dir(&env), Some(PathBuf::from("/x/nats")));
    let relative = Env {
        xdg_config_home: Some("x".into()),
        ..env.clone()
    };
    assert_eq!(nats_dir(&relative), Some(PathBuf::from("/h/.config/nats")));
    assert_eq!(nats_dir(&Env::default()), None);
}

#[test]
fn a_context_field_portcullis_cannot_honour_is_refused_by_name() {
    let home = Home::new();
    home.context(
        "ngs",
        r#"{"url": "tls://connect.ngs.global", "nsc": "nsc://acme/app"}"#,
    );
    home.context("domain", r#"{"jetstream_domain": "hub"}"#);
    home.context("half", r#"{"password": "pw"}"#);
    home.context("two", r#"{"token": "t", "creds": "/a.creds"}"#);
    home.context("broken", r#"{"url": 4222}"#);
    // Read up to MAX_CONTEXT_BYTES only: what is past it makes no context.
    let padding = " ".repeat(MAX_CONTEXT_BYTES as usize);
    home.context(
        "huge",
        &format!(r#"{{"url": "nats://127.0.0.1:4222"{padding}}}"#),
    );
    let with = |name: &str| {
        resolve(
            &NatsFlags {
                context: Some(name.into()),
                ..NatsFlags::default()
            },
            &home.env(),
            None,
        )
        .unwrap_err()
    };
    assert!(matches!(
        with("ngs"),
        TargetError::Unsupported { field: "nsc", .. }
    ));
    assert!(matches!(
        with("domain"),
        TargetError::Unsupported {
            field: "jetstream_domain",
            ..
        }
    ));
    assert!(matches!(
        with("half"),
        TargetError::Incomplete {
            field: "password",
            other: "user",
            ..
        }
    ));
    assert!(matches!(with("two"), TargetError::SeveralMethods(_)));
    assert!(matches!(with("broken"), TargetError::ContextParse { .. }));
    assert!(matches!(with("huge"), TargetError::ContextParse { .. }));
    assert!(matches!(with("missing"), TargetError::ContextRead { .. }));
    assert!(matches!(with("../etc"), TargetError::ContextName(_)));
}

#[test]
fn no_password_or_token_is_shown_by_debug_or_errors() {
    let home = Home::new();
    home.context("prod", PROD);
    let flags = NatsFlags {
        context: Some("prod".into()),
        password: Some(Secret::new("flag-secret")),
        ..NatsFlags::default()
    };
    assert!(!format!("{flags:?}").contains("flag-secret"));
    let r = resolve(
        &NatsFlags {
            context: Some("prod".into()),
            ..NatsFlags::default()
        },
        &home.env(),
        None,
    )
    .unwrap();
    assert!(!format!("{r:?}").contains("s3cret"), "{r:?}");
    home.context("bad", r#"{"password": "s3cret"}"#);
    let e = resolve(
        &NatsFlags {
            context: Some("bad".into()),
            ..NatsFlags::default()
        },
        &home.env(),
        None,
    )
    .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn run_overrides_replace_the_config_credentials_whole() {
    let home = Home::new();
    let mut nats = config(serde_json::json!({
        "servers": ["nats://127.0.0.1:1"], "token": "host-token"
    }));
    let flags = NatsFlags {
        server: Some("nats://127.0.0.1:2".into()),
        creds: Some("/auth.creds".into()),
        ..NatsFlags::default()
    };
    let changed = apply_overrides(&flags, &home.env(), &mut nats).unwrap();
    assert_eq!(nats.servers, vec!["nats://127.0.0.1:2"]);
    assert_eq!(nats.creds, Some(PathBuf::from("/auth.creds")));
    assert!(nats.token.is_none());
    assert_eq!(changed.len(), 2, "{changed:?}");

    // The selected context is never the host's.
    home.context("prod", PROD);
    home.select("prod");
    let mut nats = config(serde_json::json!({ "servers": ["nats://127.0.0.1:1"] }));
    let changed = apply_overrides(&NatsFlags::default(), &home.env(), &mut nats).unwrap();
    assert!(changed.is_empty());
    assert_eq!(nats.servers, vec!["nats://127.0.0.1:1"]);
}
