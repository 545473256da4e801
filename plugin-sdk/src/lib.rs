//! Write Portcullis authentication plugins in Rust.
//!
//! A plugin is one type that implements [`Authenticator`] plus one
//! [`export!`] line; this crate hides the WIT bindings so plugin logic stays
//! plain Rust that unit-tests natively (`cargo test`) and builds into a
//! WebAssembly component with `cargo build --target wasm32-wasip2`.
//!
//! ```no_run
//! use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant};
//!
//! struct OnlyAlice;
//!
//! impl Authenticator for OnlyAlice {
//!     fn configure(_config: &str) -> Result<Self, String> {
//!         Ok(OnlyAlice)
//!     }
//!
//!     fn authenticate(&self, request: &AuthRequest) -> Decision {
//!         match request.connect.user.as_deref() {
//!             Some("alice") => Decision::Allow(Grant::new("APP1")),
//!             Some(_) => Decision::Deny("not alice".into()),
//!             None => Decision::Abstain,
//!         }
//!     }
//! }
//!
//! portcullis_sdk::export!(OnlyAlice);
//! ```
//!
//! The host calls `configure` once per instance (with the plugin's JSON
//! configuration) and `authenticate` once per login. Plugins never see a key;
//! the host signs the user JWT after checking the grant against its policy.
//!
//! Helpers: [`parse_config`] (JSON configuration with errors that say
//! where), [`Permission::allow`]/[`Permission::deny`] and [`Grant::new`]
//! (subject permission builders), and in [`host`] the host functions:
//! [`host::verify_password`] (bcrypt, run natively by the host),
//! [`host::verify_nkey_signature`] (NKey challenges),
//! [`host::constant_time_eq`] (plaintext secrets), [`host::log`] and
//! [`host::now_unix_ms`]; [`sql::query`] runs the operator's statements on
//! a granted database. Outside WebAssembly they have native stand-ins, so
//! `cargo test` exercises the same logic. [`kv`] reads JetStream KV buckets
//! the operator granted (`grants = { kv = [...] }`), from the host's copy.
//!
//! With the feature `http`, [`http::send`] makes HTTP requests through
//! `wasi:http` to the hosts the operator granted the plugin.
//!
//! `portcullis plugin new NAME --lang rust` creates a project with this
//! crate, a starter configuration and conformance vectors.

pub mod host;
#[cfg(feature = "http")]
pub mod http;
pub mod kv;
pub mod sql;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        // The world with every capability a grant can give: a plugin
        // imports only what it calls, so one that never queries a database
        // needs no grant.
        world: "with-grants",
        with: { "wasi:keyvalue/store@0.2.0-draft": generate },
        pub_export_macro: true,
        export_macro_name: "__export_authenticator",
        default_bindings_module: "portcullis_sdk::bindings",
    });
}

pub use bindings::exports::portcullis::authenticator::plugin::Guest;
pub use bindings::portcullis::authenticator::types::{
    AuthRequest, ClientInfo, ConnectOptions, Decision, Grant, Limits, Permission,
    ResponsePermission, ServerInfo, TlsInfo,
};

/// The version of the WIT package this SDK builds plugins for.
pub const WIT_VERSION: &str = "0.2.0";

/// An authentication plugin.
///
/// The value returned by [`Authenticator::configure`] lives as long as the
/// instance and serves every [`Authenticator::authenticate`] call; parse and
/// index the configuration there, not per login.
pub trait Authenticator: Sized + 'static {
    /// Build the plugin from its configuration (a JSON document, `"{}"` when
    /// the host configuration gives none). An `Err` keeps the plugin from
    /// serving and is shown to the operator, so make it specific.
    fn configure(config: &str) -> Result<Self, String>;

    /// Decide one login: allow with a grant, deny with a reason, or abstain
    /// to let the next plugin in the chain decide.
    fn authenticate(&self, request: &AuthRequest) -> Decision;
}

/// Parse a JSON configuration into `T`, with an error message that names
/// the position of the problem.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    serde_json::from_str(config).map_err(|e| format!("invalid plugin configuration: {e}"))
}

impl Permission {
    /// No restriction.
    pub fn any() -> Self {
        Permission {
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Allow exactly these subjects.
    pub fn allow<S: Into<String>>(subjects: impl IntoIterator<Item = S>) -> Self {
        Permission {
            allow: subjects.into_iter().map(Into::into).collect(),
            deny: Vec::new(),
        }
    }

    /// Add subjects to the deny list.
    pub fn deny<S: Into<String>>(mut self, subjects: impl IntoIterator<Item = S>) -> Self {
        self.deny.extend(subjects.into_iter().map(Into::into));
        self
    }
}

impl Limits {
    /// No limits beyond the account's.
    pub fn unlimited() -> Self {
        Limits {
            subs: None,
            data: None,
            payload: None,
        }
    }
}

impl Grant {
    /// A grant into `account` with no restrictions beyond the account's own
    /// and the host's default expiry.
    pub fn new(account: impl Into<String>) -> Self {
        Grant {
            account: account.into(),
            display_name: None,
            publish: Permission::any(),
            subscribe: Permission::any(),
            response: None,
            expires_in_secs: None,
            tags: Vec::new(),
            source_cidrs: Vec::new(),
            connection_types: Vec::new(),
            limits: Limits::unlimited(),
        }
    }
}

impl AuthRequest {
    /// A request with every field empty, for plugin unit tests.
    pub fn empty() -> Self {
        AuthRequest {
            server: ServerInfo {
                name: String::new(),
                host: String::new(),
                id: String::new(),
                version: String::new(),
                cluster: String::new(),
                tags: Vec::new(),
            },
            user_nkey: String::new(),
            client: ClientInfo {
                host: String::new(),
                id: 0,
                user: String::new(),
                name: String::new(),
                tags: Vec::new(),
                name_tag: String::new(),
                kind: "Client".into(),
                connection_type: "nats".into(),
                mqtt_id: String::new(),
                nonce: String::new(),
            },
            connect: ConnectOptions {
                user: None,
                pass: None,
                token: None,
                jwt: None,
                nkey: None,
                sig: None,
                name: None,
                lang: None,
                version: None,
                protocol: 1,
            },
            tls: None,
        }
    }

    /// A user/password login, for plugin unit tests.
    pub fn with_password(user: &str, pass: &str) -> Self {
        let mut request = AuthRequest::empty();
        request.connect.user = Some(user.into());
        request.connect.pass = Some(pass.into());
        request
    }
}

#[doc(hidden)]
pub mod __private {
    //! Glue used by [`export!`](crate::export); not a public API.
    use super::{AuthRequest, Authenticator, Decision};
    use std::cell::RefCell;

    trait DynAuthenticator {
        fn authenticate(&self, request: &AuthRequest) -> Decision;
    }

    impl<T: Authenticator> DynAuthenticator for T {
        fn authenticate(&self, request: &AuthRequest) -> Decision {
            Authenticator::authenticate(self, request)
        }
    }

    thread_local! {
        // A component instance is single threaded; the configured plugin
        // lives here between calls.
        static PLUGIN: RefCell<Option<Box<dyn DynAuthenticator>>> = const { RefCell::new(None) };
    }

    pub fn configure<T: Authenticator>(config: String) -> Result<(), String> {
        let plugin = T::configure(&config)?;
        PLUGIN.with(|p| *p.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    pub fn authenticate(request: AuthRequest) -> Decision {
        PLUGIN.with(|p| match p.borrow().as_ref() {
            Some(plugin) => plugin.authenticate(&request),
            None => Decision::Deny("plugin was not configured".into()),
        })
    }
}

/// Export a type implementing [`Authenticator`] as the plugin's entry points.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __PortcullisGuest;

        impl $crate::Guest for __PortcullisGuest {
            fn configure(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::configure::<$plugin>(config)
            }
            fn authenticate(request: $crate::AuthRequest) -> $crate::Decision {
                $crate::__private::authenticate(request)
            }
        }

        // Component exports only exist in WebAssembly; natively the plugin
        // is a plain library its unit tests link against.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_authenticator!(__PortcullisGuest with_types_in $crate::bindings);
    };
}
