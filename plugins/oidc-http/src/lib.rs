//! The oidc plugin (plugins/oidc) built with its `remote` feature: keys
//! from the identity provider's `jwks_uri` or discovery document, fetched
//! under the plugin's `http` grant, so a rotated key is admitted without a
//! reload. A separate component because it imports `wasi:http`, which the
//! host loads only for a plugin granted `http`; plugins/oidc stays free of
//! it for deployments that paste their keys into the configuration.

#[path = "../../oidc/src/lib.rs"]
mod oidc;

pub use oidc::Oidc;
