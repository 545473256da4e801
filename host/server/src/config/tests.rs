use super::*;
use crate::policy::MaxExpiry;

const GOOD: &str = r#"
[nats]
servers = ["nats://127.0.0.1:4222"]
user = "auth"
password = "auth"

[callout]
issuer_seed = "keys/issuer.nk"
xkey_seed = "env:PORTCULLIS_XKEY"

[[plugins]]
name = "users"
wasm = "plugins/static_users.wasm"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
config_file = "users.json"

[[plugins]]
name = "inline"
wasm = "/abs/other.wasm"
accounts = ["APP1"]
config = { alice = { pass = "alice", account = "APP1" } }
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/portcullis/portcullis.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_design_example_parses_with_defaults_and_resolved_paths() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.nats.queue, "portcullis");
    assert_eq!(c.callout.mode, Mode::Config);
    assert_eq!(
        c.issuer_seed(),
        &SeedSource::File("/etc/portcullis/keys/issuer.nk".into())
    );
    assert_eq!(
        c.xkey_seed(),
        Some(&SeedSource::Env("PORTCULLIS_XKEY".into()))
    );
    let users = &c.plugins[0];
    assert_eq!(
        users.source,
        PluginSource::File("/etc/portcullis/plugins/static_users.wasm".into())
    );
    assert_eq!(
        users.config_file.as_deref(),
        Some(Path::new("/etc/portcullis/users.json"))
    );
    assert_eq!(
        users.max_expiry,
        MaxExpiry::Limited(Duration::from_secs(3600))
    );
    assert_eq!(users.timeout_ms, DEFAULT_TIMEOUT_MS);
    assert_eq!(users.memory_mb, DEFAULT_MEMORY_MB);
    let inline = &c.plugins[1];
    assert_eq!(inline.source, PluginSource::File("/abs/other.wasm".into()));
    assert_eq!(inline.max_expiry, MaxExpiry::Limited(DEFAULT_MAX_EXPIRY));
    let json: serde_json::Value = serde_json::from_str(&inline.config_json().unwrap()).unwrap();
    assert_eq!(json["alice"]["account"], "APP1");
}

#[test]
fn max_expiry_unlimited_is_an_explicit_word() {
    let c = parse(&GOOD.replace("max_expiry = \"1h\"", "max_expiry = \"unlimited\"")).unwrap();
    assert_eq!(c.plugins[0].max_expiry, MaxExpiry::Unlimited);
    assert_eq!(c.plugins[0].policy().max_expiry, MaxExpiry::Unlimited);
    let err = error(&GOOD.replace("max_expiry = \"1h\"", "max_expiry = \"0s\""));
    assert!(
        err.contains("max_expiry") && err.contains("longer than zero"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_named_with_the_file() {
    let err = error(
        &GOOD
            .replace("queue", "x")
            .replace("user = \"auth\"", "usr = \"auth\""),
    );
    assert!(
        err.contains("portcullis.toml") && err.contains("unknown field `usr`"),
        "{err}"
    );
    let err = error(&GOOD.replace("max_expiry = \"1h\"", "max_expiry = \"1h\"\ntimeout = 5"));
    assert!(err.contains("unknown field `timeout`"), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    let err = error(&GOOD.replace("\"1h\"", "\"soon\""));
    assert!(
        err.contains("\"soon\" is neither a duration like \"1h\"")
            && err.contains("nor \"unlimited\""),
        "{err}"
    );
    let err = error(&GOOD.replace("accounts = [\"APP1\", \"APP2\"]", "accounts = []"));
    assert!(err.contains("plugins[0] (users).accounts"), "{err}");
    let err = error(&GOOD.replace("name = \"inline\"", "name = \"users\""));
    assert!(err.contains("duplicate plugin name"), "{err}");
    let err = error(&GOOD.replace("max_expiry = \"1h\"", "max_expiry = \"1h\"\ntimeout_ms = 0"));
    assert!(err.contains("timeout_ms"), "{err}");
    let err = error(&GOOD.replace(
        "config_file = \"users.json\"",
        "config_file = \"u.json\"\nconfig = {}",
    ));
    assert!(err.contains("either config or config_file"), "{err}");
    let err = error(&GOOD.replace("user = \"auth\"", "token = \"t\"\nuser = \"auth\""));
    assert!(err.contains("choose one of"), "{err}");
    let err = error(&GOOD.replace("servers = [\"nats://127.0.0.1:4222\"]", "servers = []"));
    assert!(err.contains("nats.servers"), "{err}");
    let err = error("[nats]\nservers = [\"x\"]\n");
    assert!(err.contains("missing field `callout`"), "{err}");
}

#[test]
fn a_broken_config_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("portcullis.toml");
    std::fs::write(&toml_path, GOOD).unwrap();
    std::fs::write(dir.path().join("users.json"), "{\"alice\": ").unwrap();
    let config = Config::load(&toml_path).unwrap();
    let err = config.plugins[0].config_json().unwrap_err().to_string();
    assert!(
        err.contains("users.json") && err.contains("not valid JSON"),
        "{err}"
    );

    let err = Config::load(&dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.toml"), "{err}");
}

const OPERATOR: &str = r#"
[nats]
servers = ["nats://127.0.0.1:4222"]
creds = "auth.creds"

[callout]
mode = "operator"
issuer_seed = "keys/AUTH-signing.nk"
callout_account = "CALLOUT_KEY"

[accounts.APP1]
public_key = "ACCOUNT_KEY"
signing_seed = "keys/APP1-signing.nk"
scoped = true

[[plugins]]
name = "users"
wasm = "u.wasm"
accounts = ["APP1"]
"#;

fn operator(text: &str) -> String {
    text.replace("ACCOUNT_KEY", &nkeys::KeyPair::new_account().public_key())
        .replace("CALLOUT_KEY", &nkeys::KeyPair::new_account().public_key())
}

#[test]
fn operator_mode_maps_account_names_to_keys() {
    let c = parse(&operator(OPERATOR)).unwrap();
    assert_eq!(c.callout.mode, Mode::Operator);
    assert!(c.accounts["APP1"].scoped);
    assert_eq!(
        c.signing_seed(&c.accounts["APP1"]),
        &SeedSource::File("/etc/portcullis/keys/APP1-signing.nk".into())
    );
    assert_eq!(
        c.nats.creds.as_deref(),
        Some(Path::new("/etc/portcullis/auth.creds"))
    );
}

#[test]
fn operator_mode_errors_name_the_account() {
    let err = error(
        &operator(OPERATOR).replace("accounts = [\"APP1\"]", "accounts = [\"APP1\", \"APP3\"]"),
    );
    assert!(
        err.contains("account \"APP3\" has no [accounts.APP3] entry"),
        "{err}"
    );
    let err = error(
        &OPERATOR
            .replacen("ACCOUNT_KEY", "ABC", 2)
            .replace("ACCOUNT_KEY", "x"),
    );
    assert!(err.contains("must be an account public key"), "{err}");
    let config_mode = operator(OPERATOR).replace("mode = \"operator\"", "mode = \"config\"");
    let err = error(&config_mode);
    assert!(err.contains("only used in operator mode"), "{err}");
}

#[test]
fn pushed_plugins_need_trusted_signers() {
    let pushed = GOOD.replace(
        "wasm = \"/abs/other.wasm\"",
        "wasm = \"nats-object://portcullis_plugins/inline\"",
    );
    let err = error(&pushed);
    assert!(
        err.contains("plugins[1] (inline).wasm") && err.contains("trusted_signers"),
        "{err}"
    );
    let signer = nkeys::KeyPair::new_user().public_key();
    let trusted = format!("{pushed}\n[trust]\ntrusted_signers = [\"{signer}\"]\n");
    let c = parse(&trusted).unwrap();
    assert_eq!(
        c.plugins[1].source,
        PluginSource::Object {
            bucket: "portcullis_plugins".into(),
            name: "inline".into()
        }
    );
    let err = error(&format!(
        "{pushed}\n[trust]\ntrusted_signers = [\"nope\"]\n"
    ));
    assert!(err.contains("trust.trusted_signers"), "{err}");
    let err = error(&GOOD.replace("/abs/other.wasm", "nats-object://bucket-only"));
    assert!(err.contains("plugins[1] (inline).wasm"), "{err}");
}

#[test]
fn max_in_flight_is_bounded() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.nats.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
    let err = error(&GOOD.replace(
        "password = \"auth\"",
        "password = \"auth\"\nmax_in_flight = 0",
    ));
    assert!(err.contains("nats.max_in_flight"), "{err}");
}

#[test]
fn match_tables_parse_and_errors_name_the_key() {
    let routed = GOOD.replace(
        "config_file = \"users.json\"",
        "config_file = \"users.json\"\nmatch = { user = \"svc-*\", nkey = false }",
    );
    let c = parse(&routed).unwrap();
    let route = c.plugins[0].route.as_ref().expect("match table");
    assert_eq!(route.user, ["svc-*"]);
    assert_eq!(route.nkey, Some(false));
    assert!(c.plugins[1].route.is_none());

    let err = error(&GOOD.replace(
        "config_file = \"users.json\"",
        "config_file = \"users.json\"\n[plugins.match]\nusers = \"x\"",
    ));
    assert!(err.contains("unknown field `users`"), "{err}");
    let err = error(&GOOD.replace(
        "config_file = \"users.json\"",
        "config_file = \"users.json\"\n[plugins.match]\nconnection_types = [\"tcp\"]",
    ));
    assert!(
        err.contains("plugins[0] (users).match.connection_types") && err.contains("\"tcp\""),
        "{err}"
    );
    let err = error(&GOOD.replace(
        "config_file = \"users.json\"",
        "config_file = \"users.json\"\nmatch = { user = [\"\"] }",
    ));
    assert!(err.contains("plugins[0] (users).match.user"), "{err}");
}

#[test]
fn nats_tls_paths_resolve_and_cert_needs_key() {
    let with_tls = GOOD.replace(
        "password = \"auth\"",
        "password = \"auth\"\ntls = { ca_file = \"ca.pem\", cert_file = \"/abs/c.pem\", key_file = \"k.pem\" }",
    );
    let c = parse(&with_tls).unwrap();
    let tls = c.nats.tls.as_ref().expect("tls");
    assert_eq!(
        tls.ca_file.as_deref(),
        Some(Path::new("/etc/portcullis/ca.pem"))
    );
    assert_eq!(tls.cert_file.as_deref(), Some(Path::new("/abs/c.pem")));
    assert_eq!(
        tls.key_file.as_deref(),
        Some(Path::new("/etc/portcullis/k.pem"))
    );
    let err = error(&with_tls.replace(", key_file = \"k.pem\"", ""));
    assert!(
        err.contains("nats.tls") && err.contains("go together"),
        "{err}"
    );
    let err = error(&with_tls.replace("ca_file", "cafile"));
    assert!(err.contains("unknown field `cafile`"), "{err}");
}

#[test]
fn registry_plugins_take_their_own_keys_and_need_trust() {
    let oci = GOOD.replace(
        "wasm = \"/abs/other.wasm\"",
        "wasm = \"oci://127.0.0.1:5000/auth/users:1\"\nrefresh = \"30s\"\nmax_size = \"1MiB\"",
    );
    let err = error(&oci);
    assert!(
        err.contains("plugins[1] (inline).wasm") && err.contains("allow_unsigned"),
        "{err}"
    );
    let signer = nkeys::KeyPair::new_user().public_key();
    let trusted = format!("{oci}\n[trust]\ntrusted_signers = [\"{signer}\"]\n");
    let c = parse(&trusted).unwrap();
    let source = c.plugins[1].source.oci().expect("an oci source");
    assert_eq!(source.reference.repository, "auth/users");
    assert_eq!(source.max_size, 1 << 20);
    assert!(!source.allow_unsigned && !source.insecure);
    assert_eq!(c.plugins[1].refresh, Some(Duration::from_secs(30)));
    assert_eq!(
        parse(&oci.replace("refresh = \"30s\"", "allow_unsigned = true"))
            .unwrap()
            .plugins[1]
            .source
            .oci()
            .unwrap()
            .max_size,
        1 << 20
    );

    let err = error(&trusted.replace("max_size = \"1MiB\"", "max_size = \"lots\""));
    assert!(err.contains("\"lots\" is not a size"), "{err}");
    for (bad, key) in [
        ("refresh = \"30s\"", "refresh = \"10ms\""),
        ("users:1", "users@sha256:0000"),
    ] {
        let err = error(&trusted.replace(bad, key));
        assert!(err.contains("plugins[1] (inline)"), "{key}: {err}");
    }
    let pinned = format!("sha256:{}", "a".repeat(64));
    let err = error(&trusted.replace("users:1", &format!("users@{pinned}")));
    assert!(err.contains("refresh") && err.contains("pinned"), "{err}");
    let err = error(&GOOD.replace(
        "max_expiry = \"1h\"",
        "max_expiry = \"1h\"\nrefresh = \"1m\"",
    ));
    assert!(
        err.contains("plugins[0] (users).refresh") && err.contains("oci://"),
        "{err}"
    );
}

#[test]
fn runtime_workers_are_bounded() {
    assert_eq!(parse(GOOD).unwrap().runtime.workers, None);
    let one = format!("{GOOD}\n[runtime]\nworkers = 1\n");
    assert_eq!(parse(&one).unwrap().runtime.workers, Some(1));
    let err = error(&one.replace("workers = 1", "workers = 0"));
    assert!(err.contains("runtime.workers"), "{err}");
}

#[test]
fn cache_max_age_defaults_to_30_days_and_0s_keeps_forever() {
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(parse(GOOD).unwrap().cache_max_age(), Some(30 * day));
    let age = |value: &str| format!("{GOOD}\n[runtime]\ncache_max_age = {value:?}\n");
    assert_eq!(parse(&age("7d")).unwrap().cache_max_age(), Some(7 * day));
    assert_eq!(parse(&age("0s")).unwrap().cache_max_age(), None);
    let err = error(&age("10m"));
    assert!(err.contains("runtime.cache_max_age"), "{err}");
    let err = error(&age("soon"));
    assert!(err.contains("cache_max_age"), "{err}");
}

#[test]
fn a_plugin_may_not_place_users_in_the_system_or_callout_account_unless_allowed() {
    for account in ["SYS", "$SYS", "AUTH"] {
        let text = GOOD.replace(
            "accounts = [\"APP1\", \"APP2\"]",
            &format!("accounts = [\"APP1\", \"{account}\"]"),
        );
        let err = error(&text);
        assert!(err.contains("plugins[0] (users).accounts"), "{err}");
        assert!(err.contains("system or the callout account"), "{err}");
        let allowed = text.replace(
            "config_file = \"users.json\"",
            "config_file = \"users.json\"\nallow_privileged_accounts = true",
        );
        parse(&allowed).unwrap();
    }
    // Deployments whose accounts are named otherwise say so.
    let renamed = GOOD
        .replace(
            "xkey_seed = \"env:PORTCULLIS_XKEY\"",
            "xkey_seed = \"env:PORTCULLIS_XKEY\"\nsystem_account = \"SYSTEM\"\naccount = \"CALLOUT\"",
        )
        .replace("accounts = [\"APP1\", \"APP2\"]", "accounts = [\"APP1\", \"CALLOUT\"]");
    assert!(error(&renamed).contains("system or the callout account"));
}

#[test]
fn a_ceiling_must_be_made_of_subjects() {
    let with = |ceiling: &str| {
        GOOD.replace(
            "config_file = \"users.json\"",
            &format!("config_file = \"users.json\"\nceiling = {ceiling}"),
        )
    };
    let c = parse(&with("{ publish = [\"app.>\"] }")).unwrap();
    assert_eq!(
        c.plugins[0].ceiling.as_ref().unwrap().publish.as_deref(),
        Some(&["app.>".to_owned()][..])
    );
    let err = error(&with("{ publish = [\"app.>.x\"] }"));
    assert!(err.contains("plugins[0] (users).ceiling"), "{err}");
    let err = error(&with("{ pub = [\"app.>\"] }"));
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn operator_mode_knows_the_callout_account_by_its_key() {
    let text = operator(OPERATOR);
    let callout = text
        .lines()
        .find_map(|l| l.strip_prefix("callout_account = "))
        .unwrap()
        .to_owned();
    let err = error(&text.replacen(
        "public_key = \"A",
        &format!("public_key = {callout}\n# \"A"),
        1,
    ));
    assert!(err.contains("system or the callout account"), "{err}");
}

#[test]
fn accept_unsealed_needs_an_xkey_and_no_pinned_server_xkeys() {
    assert!(!parse(GOOD).unwrap().callout.accept_unsealed);
    let rollout = GOOD.replace(
        "xkey_seed = \"env:PORTCULLIS_XKEY\"",
        "xkey_seed = \"env:PORTCULLIS_XKEY\"\naccept_unsealed = true",
    );
    assert!(parse(&rollout).unwrap().callout.accept_unsealed);
    let err = error(&GOOD.replace(
        "xkey_seed = \"env:PORTCULLIS_XKEY\"",
        "accept_unsealed = true",
    ));
    assert!(
        err.contains("callout.accept_unsealed") && err.contains("requires xkey_seed"),
        "{err}"
    );
    let pinned = rollout.replace(
        "accept_unsealed = true",
        &format!(
            "accept_unsealed = true\nserver_xkeys = [\"{}\"]",
            nkeys::XKey::new().public_key()
        ),
    );
    let err = error(&pinned);
    assert!(
        err.contains("callout.accept_unsealed") && err.contains("server_xkeys"),
        "{err}"
    );
}

#[test]
fn log_budgets_default_small_and_are_bounded() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.plugins[0].log_lines, 100);
    assert_eq!(c.plugins[0].log_bytes, ByteSize(16 * 1024));
    let c = parse(&GOOD.replace(
        "max_expiry = \"1h\"",
        "max_expiry = \"1h\"\nlog_lines = 0\nlog_bytes = \"64KiB\"",
    ))
    .unwrap();
    assert_eq!(c.plugins[0].log_lines, 0);
    assert_eq!(c.plugins[0].log_bytes, ByteSize(64 << 10));
    let err = error(&GOOD.replace(
        "max_expiry = \"1h\"",
        "max_expiry = \"1h\"\nlog_lines = 100001",
    ));
    assert!(err.contains("plugins[0] (users).log_lines"), "{err}");
    let err = error(&GOOD.replace(
        "max_expiry = \"1h\"",
        "max_expiry = \"1h\"\nlog_bytes = \"1GiB\"",
    ));
    assert!(err.contains("plugins[0] (users).log_bytes"), "{err}");
}

#[test]
fn connect_timeout_is_a_duration_and_absent_means_keep_trying() {
    assert_eq!(parse(GOOD).unwrap().nats.connect_timeout, None);
    let timeout = |value: &str| {
        GOOD.replace(
            "password = \"auth\"\n",
            &format!("password = \"auth\"\nconnect_timeout = {value:?}\n"),
        )
    };
    assert_eq!(
        parse(&timeout("90s")).unwrap().nats.connect_timeout,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        parse(&timeout("2m 30s")).unwrap().nats.connect_timeout,
        Some(Duration::from_secs(150))
    );
    let err = error(&timeout("0s"));
    assert!(err.contains("nats.connect_timeout"), "{err}");
    let err = error(&timeout("soon"));
    assert!(err.contains("\"soon\" is not a duration"), "{err}");
}

/// GOOD with `[nats] password = VALUE` (a TOML string).
fn with_password(value: &str) -> String {
    GOOD.replace("password = \"auth\"", &format!("password = {value:?}"))
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn a_nats_password_is_inline_from_the_environment_or_from_a_file() {
    let password = |c: Config| c.nats.password.unwrap().expose().to_owned();
    assert_eq!(password(parse(GOOD).unwrap()), "auth");

    let env = |name: &str| (name == "NATS_PASS").then(|| "from-env".to_owned());
    let c = Config::parse_with_env(&with_password("env:NATS_PASS"), Path::new("/x.toml"), &env)
        .unwrap();
    assert_eq!(
        c.nats.password.as_ref().unwrap().source(),
        &SecretSource::Env("NATS_PASS".into())
    );
    assert_eq!(password(c), "from-env");

    // Relative to the configuration file; one trailing newline is not part
    // of the secret, other whitespace is.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nats.pass"), " s3cret \n").unwrap();
    let toml = dir.path().join("portcullis.toml");
    let c = Config::parse_with_env(&with_password("file:nats.pass"), &toml, &no_env).unwrap();
    assert_eq!(
        c.nats.password.as_ref().unwrap().source(),
        &SecretSource::File(dir.path().join("nats.pass"))
    );
    assert_eq!(password(c), " s3cret ");

    let token = GOOD.replace(
        "user = \"auth\"\npassword = \"auth\"",
        "token = \"file:nats.pass\"",
    );
    let c = Config::parse_with_env(&token, &toml, &no_env).unwrap();
    assert_eq!(c.nats.token.unwrap().expose(), " s3cret ");
}

#[test]
fn a_missing_or_empty_secret_names_its_source_and_key() {
    let err = Config::parse_with_env(
        &with_password("env:NATS_PASS"),
        Path::new("/x.toml"),
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "/x.toml: nats.password: environment variable NATS_PASS is not set (or not UTF-8)"
    );

    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("portcullis.toml");
    let err = Config::parse_with_env(&with_password("file:absent"), &toml, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nats.password: cannot read") && err.contains("absent"),
        "{err}"
    );

    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let err = Config::parse_with_env(&with_password("file:empty"), &toml, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            "nats.password: file {}/empty is empty"
                .replace("{}", &dir.path().display().to_string())
                .as_str()
        ),
        "{err}"
    );
}

#[test]
fn a_resolved_secret_never_shows_in_debug_output() {
    let env = |_: &str| Some("hunter2-from-env".to_owned());
    let c = Config::parse_with_env(&with_password("env:NATS_PASS"), Path::new("/x.toml"), &env)
        .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("environment variable NATS_PASS"), "{debug}");

    let c = parse(&with_password("hunter2-inline")).unwrap();
    let debug = format!("{c:?} {:?}", c.nats);
    assert!(!debug.contains("hunter2"), "{debug}");
    // A value that is not `env:`/`file:` is the secret, and an invalid
    // config never quotes it either.
    let err = error(&with_password("hunter2").replace("user = \"auth\"\n", ""));
    assert!(
        !err.contains("hunter2") && err.contains("user and password go together"),
        "{err}"
    );
}

/// The parser (TOML, path resolution, validation) on generated text,
/// bounded and without a persistence file: whatever an operator or a
/// broken template writes is a value or an error, never a panic.
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn a_good_config_with_one_line_replaced_never_panics(
            line in any::<prop::sample::Index>(),
            value in prop_oneof![
                any::<String>(),
                "[a-z_]{1,16} = (\"[^\"]{0,20}\"|-?[0-9]{1,20}|true|\\[\\])",
                "\\[\\[?[a-z_.]{0,12}\\]\\]?",
            ],
        ) {
            let mut lines: Vec<&str> = GOOD.lines().collect();
            let i = line.index(lines.len());
            lines[i] = &value;
            let _ = parse(&lines.join("\n"));
        }
    }
}

#[test]
fn kv_grants_name_buckets_nats_accepts_each_once() {
    let with = |kv: &str| {
        GOOD.replace(
            "config_file = \"users.json\"",
            &format!("config_file = \"users.json\"\ngrants = {{ kv = {kv} }}"),
        )
    };
    let c = parse(&with(r#"["users", "revoked_2"]"#)).unwrap();
    assert_eq!(c.plugins[0].grants.kv, ["users", "revoked_2"]);
    for bad in [r#"["a.b"]"#, r#"["users.>"]"#, r#"[""]"#, r#"["a b"]"#] {
        let e = error(&with(bad));
        assert!(
            e.contains("plugins[0] (users).grants.kv") && e.contains("not a KV bucket name"),
            "{bad}: {e}"
        );
    }
    let twice = error(&with(r#"["users", "users"]"#));
    assert!(twice.contains("listed twice"), "{twice}");
}

/// GOOD with one database and the first plugin granted `grant`.
fn with_database(database: &str, grant: &str) -> String {
    GOOD.replacen(
        "config_file = \"users.json\"",
        &format!("config_file = \"users.json\"\ngrants = {{ sql = [\"{grant}\"] }}"),
        1,
    ) + database
}

const USERS_DB: &str = r#"
[databases.users]
url = "postgres://portcullis@127.0.0.1:5432/auth"
password = "env:PG_PASS"

[databases.users.queries]
user = "SELECT pass, account FROM nats_users WHERE name = $1"
"#;

#[test]
fn a_database_parses_with_defaults_and_its_password_from_the_environment() {
    let env = |name: &str| (name == "PG_PASS").then(|| "pg-s3cret".to_owned());
    let c = Config::parse_with_env(
        &with_database(USERS_DB, "users"),
        Path::new("/x.toml"),
        &env,
    )
    .unwrap();
    let db = &c.databases["users"];
    assert_eq!(db.pool_size, DEFAULT_POOL_SIZE);
    assert_eq!(db.max_rows, DEFAULT_MAX_ROWS);
    assert_eq!(db.max_field_bytes, DEFAULT_MAX_FIELD_BYTES);
    assert_eq!(db.tls, DatabaseTls::Disable);
    assert_eq!(
        db.pg_config().unwrap().get_password(),
        Some(&b"pg-s3cret"[..])
    );
    assert!(
        !format!("{c:?}").contains("pg-s3cret"),
        "Debug shows no password"
    );
    assert_eq!(c.plugins[0].grants.sql, ["users"]);
}

#[test]
fn a_database_on_the_network_is_accepted_with_tls() {
    let env = |name: &str| (name == "PG_PASS").then(|| "pg-s3cret".to_owned());
    let remote = USERS_DB.replace("127.0.0.1", "db.example.com");
    for (tls, extra) in [
        ("verify-full", "ca_file = \"certs/ca.pem\"\n"),
        ("verify-full", ""),
        ("require", ""),
    ] {
        let text = remote.replace(
            "password = ",
            &format!("tls = \"{tls}\"\n{extra}password = "),
        );
        let c = Config::parse_with_env(
            &with_database(&text, "users"),
            Path::new("/etc/p/x.toml"),
            &env,
        )
        .unwrap_or_else(|e| panic!("{tls} {extra}: {e}"));
        let db = &c.databases["users"];
        assert_ne!(db.tls, DatabaseTls::Disable);
        if !extra.is_empty() {
            assert_eq!(
                db.ca_file.as_deref(),
                Some(Path::new("/etc/p/certs/ca.pem"))
            );
        }
    }
}

#[test]
fn a_database_client_certificate_needs_its_key_and_tls() {
    let env = |name: &str| (name == "PG_PASS").then(|| "pg-s3cret".to_owned());
    let parse = |extra: &str| {
        let text = USERS_DB.replace("password = ", &format!("{extra}password = "));
        Config::parse_with_env(
            &with_database(&text, "users"),
            Path::new("/etc/p/x.toml"),
            &env,
        )
        .map_err(|e| e.to_string())
    };
    let c =
        parse("tls = \"verify-full\"\ncert_file = \"c.pem\"\nkey_file = \"/k/k.pem\"\n").unwrap();
    let db = &c.databases["users"];
    assert_eq!(db.cert_file.as_deref(), Some(Path::new("/etc/p/c.pem")));
    assert_eq!(db.key_file.as_deref(), Some(Path::new("/k/k.pem")));

    for (extra, key, says) in [
        (
            "tls = \"require\"\ncert_file = \"c.pem\"\n",
            "key_file",
            "needed with cert_file",
        ),
        (
            "tls = \"require\"\nkey_file = \"k.pem\"\n",
            "cert_file",
            "needed with key_file",
        ),
        (
            "cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
            "cert_file",
            "over TLS only",
        ),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(
            e.contains(&format!("databases.users.{key}")) && e.contains(says),
            "{extra}: {e}"
        );
    }
}

#[test]
fn database_mistakes_are_refused_by_key_without_the_password() {
    let env = |name: &str| (name == "PG_PASS").then(|| "pg-s3cret".to_owned());
    let err = |text: String| {
        Config::parse_with_env(&text, Path::new("/x.toml"), &env)
            .unwrap_err()
            .to_string()
    };
    let e = err(with_database(USERS_DB, "orders"));
    assert!(
        e.contains("grants.sql") && e.contains("no [databases.orders]"),
        "{e}"
    );

    let inline = USERS_DB.replace("portcullis@", "portcullis:hunter2@");
    let e = err(with_database(&inline, "users"));
    assert!(
        e.contains("databases.users.url") && e.contains("holds a password"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");

    let e = err(with_database(
        &USERS_DB.replace("env:PG_PASS", "hunter2"),
        "users",
    ));
    assert!(
        e.contains("databases.users.password") && !e.contains("hunter2"),
        "{e}"
    );

    let e = err(with_database(
        &USERS_DB.replace("127.0.0.1", "db.example.com"),
        "users",
    ));
    assert!(
        e.contains("databases.users.tls") && e.contains("loopback"),
        "{e}"
    );

    let e = err(with_database(
        &USERS_DB.replace(
            "password = ",
            "tls = \"require\"\nca_file = \"ca.pem\"\npassword = ",
        ),
        "users",
    ));
    assert!(
        e.contains("databases.users.ca_file") && e.contains("verify-full"),
        "{e}"
    );

    let e = err(with_database(
        &USERS_DB
            .replace("127.0.0.1:5432", "%2Frun%2Fpostgresql")
            .replace("password = ", "tls = \"verify-full\"\npassword = "),
        "users",
    ));
    assert!(
        e.contains("databases.users.tls") && e.contains("Unix socket"),
        "{e}"
    );

    let e = err(with_database(
        &USERS_DB.replace("password = ", "pool = 3\npassword = "),
        "users",
    ));
    assert!(e.contains("unknown field") && e.contains("pool"), "{e}");

    let e = err(with_database(
        &USERS_DB.replace("password = ", "max_rows = 0\npassword = "),
        "users",
    ));
    assert!(e.contains("databases.users.max_rows"), "{e}");

    let e = err(with_database(
        &USERS_DB.replace("postgres://", "mysql://"),
        "users",
    ));
    assert!(e.contains("must start with postgres://"), "{e}");

    let e = Config::parse_with_env(
        &with_database(USERS_DB, "users"),
        Path::new("/x.toml"),
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("databases.users.password") && e.contains("PG_PASS"),
        "{e}"
    );
}
