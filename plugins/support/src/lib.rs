//! What the bundled authenticators (nkeys, oidc, x509) share, so each of
//! them is only the part that knows its credential:
//!
//! - [`GrantSpec`]: the account, permissions (the nats-io `Permissions`
//!   JSON shape that `users.json` uses), expiry and tags a configuration
//!   entry grants; static-users takes [`Permissions`] alone, untemplated;
//! - [`template`]: subject templates such as `user.{sub}.>`, filled so that
//!   a value from a credential can never widen a grant;
//! - [`glob`]: `*`/`?` patterns for names, DNs and SANs;
//! - [`password`]: stored passwords (plaintext, bcrypt, argon2), shared by
//!   static-users and sql-users.

pub mod glob;
pub mod grant;
pub mod password;
pub mod template;

pub use grant::{GrantSpec, Permissions, Response, SubjectList};
