//! A verified NATS request as the WIT `auth-request` plugins receive:
//! the one place where the protocol's claims meet the runtime's types.

use portcullis_protocol::claims::AuthorizationRequest;
use portcullis_runtime::bindings::AuthRequest;
use portcullis_runtime::bindings::portcullis::authenticator::types as wit;

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The WIT `auth-request` a plugin sees for a verified request; empty
/// CONNECT strings become absent values.
pub fn auth_request(r: &AuthorizationRequest) -> AuthRequest {
    let s = &r.server_id;
    let c = &r.client_info;
    let o = &r.connect_opts;
    AuthRequest {
        server: wit::ServerInfo {
            name: s.name.clone(),
            host: s.host.clone(),
            id: s.id.clone(),
            version: s.version.clone(),
            cluster: s.cluster.clone(),
            tags: s.tags.clone(),
        },
        user_nkey: r.user_nkey.clone(),
        client: wit::ClientInfo {
            host: c.host.clone(),
            id: c.id,
            user: c.user.clone(),
            name: c.name.clone(),
            tags: c.tags.clone(),
            name_tag: c.name_tag.clone(),
            kind: c.kind.clone(),
            connection_type: c.client_type.clone(),
            mqtt_id: c.mqtt_id.clone(),
            nonce: c.nonce.clone(),
        },
        connect: wit::ConnectOptions {
            user: opt(&o.user),
            pass: opt(&o.pass),
            token: opt(&o.auth_token),
            jwt: opt(&o.jwt),
            nkey: opt(&o.nkey),
            sig: opt(&o.sig),
            name: opt(&o.name),
            lang: opt(&o.lang),
            version: opt(&o.version),
            protocol: o.protocol,
        },
        tls: r.client_tls.as_ref().map(|t| wit::TlsInfo {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            certs: t.certs.clone(),
            verified_chains: t.verified_chains.clone(),
        }),
    }
}
