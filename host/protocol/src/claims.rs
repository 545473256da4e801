//! The claim structs of the auth-callout protocol, as nats-server 2.10+
//! writes and reads them (nats-io/jwt v2). Every field of what we decode has
//! a default, so a server that omits or adds fields is still understood.

use serde::{Deserialize, Serialize};

/// `aud` of every authorization request.
pub const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// `nats.type` of a request.
pub const REQUEST_TYPE: &str = "authorization_request";
/// `nats.type` of our response.
pub const RESPONSE_TYPE: &str = "authorization_response";
/// `nats.version` we write; without it the server reads claims as v1.
pub const CLAIMS_VERSION: i32 = 2;

/// The request JWT's claims.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct RequestClaims {
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    pub sub: String,
    pub nats: AuthorizationRequest,
}

impl RequestClaims {
    /// A request shaped as nats-server builds it, from server `server_id`
    /// (its public key, which signs it) for the fresh `user_nkey`, valid for
    /// `ttl` seconds from `now`. For tools, benchmarks and tests that stand
    /// in for a server.
    pub fn new(server_id: &str, user_nkey: &str, now: i64, ttl: i64) -> Self {
        let mut claims = RequestClaims {
            aud: REQUEST_AUDIENCE.into(),
            iat: now,
            exp: now + ttl,
            iss: server_id.into(),
            sub: String::new(),
            ..RequestClaims::default()
        };
        claims.nats.server_id.id = server_id.into();
        claims.nats.user_nkey = user_nkey.into();
        claims.nats.claim_type = REQUEST_TYPE.into();
        claims.nats.version = CLAIMS_VERSION;
        claims.nats.client_info.kind = "Client".into();
        claims.nats.client_info.client_type = "nats".into();
        claims
    }
}

/// `nats` of a request: everything the server knows about the login.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct AuthorizationRequest {
    pub server_id: ServerId,
    pub user_nkey: String,
    pub client_info: ClientInformation,
    pub connect_opts: ConnectOptions,
    pub client_tls: Option<ClientTls>,
    pub request_nonce: String,
    #[serde(rename = "type")]
    pub claim_type: String,
    pub version: i32,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ServerId {
    pub name: String,
    pub host: String,
    pub id: String,
    pub version: String,
    pub cluster: String,
    pub tags: Vec<String>,
    pub xkey: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ClientInformation {
    pub host: String,
    pub id: u64,
    pub user: String,
    pub name: String,
    pub tags: Vec<String>,
    pub name_tag: String,
    pub kind: String,
    #[serde(rename = "type")]
    pub client_type: String,
    pub mqtt_id: String,
    pub nonce: String,
}

#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ConnectOptions {
    pub jwt: String,
    pub nkey: String,
    pub sig: String,
    pub auth_token: String,
    pub user: String,
    pub pass: String,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub protocol: i32,
}

// Hand written so that a password or token can never reach a log line
// through `{:?}`.
impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<set>" };
        f.debug_struct("ConnectOptions")
            .field("user", &self.user)
            .field("pass", &set(&self.pass))
            .field("auth_token", &set(&self.auth_token))
            .field("jwt", &set(&self.jwt))
            .field("nkey", &self.nkey)
            .field("sig", &set(&self.sig))
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ClientTls {
    pub version: String,
    pub cipher: String,
    pub certs: Vec<String>,
    pub verified_chains: Vec<Vec<String>>,
    pub server_name: String,
}

/// A subject allow/deny list (nats-io/jwt `Permission`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Permission {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl Permission {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// nats-io/jwt `ResponsePermission`; `ttl` is nanoseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResponsePermission {
    pub max: u32,
    pub ttl: u64,
}

/// The user JWT's claims.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserClaims {
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub sub: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Config mode: the target account's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub aud: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub nats: User,
}

/// `nats` of a user JWT. Limits use -1 for "unlimited", as nats-io/jwt.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    #[serde(rename = "pub", skip_serializing_if = "Permission::is_empty")]
    pub publish: Permission,
    #[serde(rename = "sub", skip_serializing_if = "Permission::is_empty")]
    pub subscribe: Permission,
    #[serde(rename = "resp", skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponsePermission>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<String>,
    /// -1 = unlimited; 0 is only written as absent (scoped signers).
    #[serde(skip_serializing_if = "is_zero")]
    pub subs: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub data: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub payload: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(rename = "type")]
    pub claim_type: &'static str,
    pub version: i32,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl User {
    /// True when the grant asked for nothing beyond the account's defaults.
    pub fn has_no_permissions_or_limits(&self) -> bool {
        self.publish.is_empty()
            && self.subscribe.is_empty()
            && self.response.is_none()
            && self.src.is_empty()
            && self.allowed_connection_types.is_empty()
            && [self.subs, self.data, self.payload]
                .iter()
                .all(|v| *v == -1)
    }
}

impl Default for User {
    fn default() -> Self {
        User {
            publish: Permission::default(),
            subscribe: Permission::default(),
            response: None,
            src: Vec::new(),
            subs: -1,
            data: -1,
            payload: -1,
            allowed_connection_types: Vec::new(),
            tags: Vec::new(),
            issuer_account: String::new(),
            claim_type: "user",
            version: CLAIMS_VERSION,
        }
    }
}

/// The response JWT's claims: `sub` is the request's `user_nkey`, `aud` the
/// server id, and exactly one of `jwt` and `error` is set.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseClaims {
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub nats: AuthorizationResponse,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthorizationResponse {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(rename = "type")]
    pub claim_type: &'static str,
    pub version: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_response_claims_have_the_v2_shape_the_server_reads() {
        let user = UserClaims {
            iss: "AISSUER".into(),
            sub: "UUSER".into(),
            aud: "APP1".into(),
            exp: Some(10),
            nats: User {
                publish: Permission {
                    allow: vec!["a.>".into()],
                    deny: vec![],
                },
                ..User::default()
            },
            ..Default::default()
        };
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!(v["aud"], "APP1");
        assert_eq!(v["nats"]["type"], "user", "type sits inside nats");
        assert_eq!(
            v["nats"]["version"], 2,
            "without version the server reads v1"
        );
        assert_eq!(v["nats"]["pub"]["allow"][0], "a.>");
        assert!(
            v["nats"].get("sub").is_none(),
            "empty permissions are omitted"
        );
        assert_eq!(v["nats"]["subs"], -1, "unlimited is -1, not 0");
        assert_eq!(v["nats"]["payload"], -1);
        assert!(v.get("name").is_none());

        let response = ResponseClaims {
            jti: String::new(),
            iat: 1,
            iss: "AISSUER".into(),
            sub: "UUSER".into(),
            aud: "NSERVER".into(),
            nats: AuthorizationResponse {
                jwt: String::new(),
                error: "no".into(),
                issuer_account: String::new(),
                claim_type: RESPONSE_TYPE,
                version: CLAIMS_VERSION,
            },
        };
        let v = serde_json::to_value(&response).unwrap();
        assert_eq!(v["nats"]["type"], "authorization_response");
        assert_eq!(v["nats"]["error"], "no");
        assert!(
            v["nats"].get("jwt").is_none(),
            "exactly one of jwt and error"
        );
    }

    #[test]
    fn debug_output_hides_passwords_and_tokens() {
        let opts = ConnectOptions {
            user: "alice".into(),
            pass: "hunter2".into(),
            auth_token: "tok-secret".into(),
            ..Default::default()
        };
        let shown = format!("{opts:?}");
        assert!(
            shown.contains("alice") && shown.contains("<set>"),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }
}
