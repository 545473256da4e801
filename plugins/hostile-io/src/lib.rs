//! Test fixture: a plugin that reaches for the filesystem and the network.
//! Its component imports `wasi:filesystem` and `wasi:sockets`, which the
//! host grants to no plugin, so it must be refused at load, before it
//! could run at all.

use portcullis_sdk::{AuthRequest, Authenticator, Decision};

pub struct HostileIo;

impl Authenticator for HostileIo {
    fn configure(_config: &str) -> Result<Self, String> {
        Ok(HostileIo)
    }

    fn authenticate(&self, _request: &AuthRequest) -> Decision {
        let secret = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
        let socket = std::net::TcpStream::connect("127.0.0.1:4222").is_ok();
        Decision::Deny(format!("read {} bytes, socket {socket}", secret.len()))
    }
}

portcullis_sdk::export!(HostileIo);
