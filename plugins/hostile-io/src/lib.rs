//! Test fixture: a plugin that reaches for the filesystem and the network.
//! Its component imports `wasi:filesystem` and `wasi:sockets`, which the
//! host links inert for every plugin (CPython imports them too): it loads,
//! and every attempt must fail without touching a file or an address.
//!
//! Configuration: {"file": "/abs/path", "tcp_port": N, "udp_port": M}, a
//! file and two loopback listeners the test owns. Every login is denied
//! with what each attempt achieved, so the reason in the server log is the
//! proof: the test expects 0 bytes, no connection, nothing sent and no
//! address, and checks its listeners heard nothing.

use portcullis_sdk::{AuthRequest, Authenticator, Decision};
use serde::Deserialize;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostileIo {
    file: String,
    tcp_port: u16,
    udp_port: u16,
}

impl Authenticator for HostileIo {
    fn configure(config: &str) -> Result<Self, String> {
        serde_json::from_str(config).map_err(|e| e.to_string())
    }

    fn authenticate(&self, _request: &AuthRequest) -> Decision {
        let file = match std::fs::read(&self.file) {
            Ok(bytes) => format!("file: read {} bytes", bytes.len()),
            Err(_) => "file: read 0 bytes".to_owned(),
        };
        let root = match std::fs::read_dir("/") {
            Ok(entries) => format!("root: listed {} entries", entries.count()),
            Err(_) => "root: listed nothing".to_owned(),
        };
        let tcp_to = SocketAddr::from(([127, 0, 0, 1], self.tcp_port));
        let tcp = match TcpStream::connect_timeout(&tcp_to, Duration::from_millis(500)) {
            Ok(_) => "tcp: connected".to_owned(),
            Err(_) => "tcp: no connection".to_owned(),
        };
        let udp_to = SocketAddr::from(([127, 0, 0, 1], self.udp_port));
        let udp = match UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"leak", udp_to)) {
            Ok(n) => format!("udp: sent {n} bytes"),
            Err(_) => "udp: sent nothing".to_owned(),
        };
        let lookup = match ("localhost", 80).to_socket_addrs() {
            Ok(addrs) => format!("lookup: {} addresses", addrs.count()),
            Err(_) => "lookup: no address".to_owned(),
        };
        Decision::Deny(format!("{file}, {root}, {tcp}, {udp}, {lookup}"))
    }
}

portcullis_sdk::export!(HostileIo);
