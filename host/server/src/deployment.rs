//! What a deployment of Portcullis looks like around the host: the pieces
//! `portcullis init` writes, which the tests and benchmarks build their
//! deployments from too, so what they exercise is what operators start
//! with.

/// The users of the nats-by-example auth-callout examples (without their
/// `sys` user: a starter config should not hand out the system account).
pub const USERS_JSON: &str = r#"{
  "alice": { "pass": "alice", "account": "APP1" },
  "bob": {
    "pass": "bob",
    "account": "APP2",
    "permissions": {
      "pub": { "allow": ["bob.>"] },
      "sub": { "allow": ["bob.>"] },
      "resp": { "max": 1 }
    }
  }
}
"#;
