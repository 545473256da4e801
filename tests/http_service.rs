//! A small HTTP/1.1 server on 127.0.0.1 for the tests of granted outbound
//! HTTP: the identity provider of the oidc tests, the decision service of
//! the webhook tests. It records every request it received, so a test can
//! count them (no refetch storm) or look at them (no password sent), and
//! answers through a handler the test swaps while a host runs (key
//! rotation).
//!
//! One request per connection (`Connection: close`): the host's client
//! must cope with that, and the server needs no keep-alive bookkeeping.
//! Every read is bounded in size and time.

use anyhow::{Context as _, Result, bail};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head or body read.
const MAX_REQUEST: usize = 256 * 1024;
/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names in lower case, values as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow service).
    pub delay: Duration,
}

impl Reply {
    pub fn json(value: &serde_json::Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// The running server; stops when dropped.
pub struct HttpService {
    addr: SocketAddr,
    handler: Arc<Mutex<Handler>>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpService {
    /// Listen on an ephemeral loopback port and answer with `handler`.
    pub async fn start(
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Arc::new(handler)));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (h, r) = (handler.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, r) = (h.clone(), r.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, h, r).await;
                });
            }
        });
        Ok(HttpService {
            addr,
            handler,
            received,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, as an `http` grant names it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer further requests with `handler`.
    pub fn answer(&self, handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for HttpService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: Arc<Mutex<Handler>>,
    received: Arc<Mutex<Vec<Received>>>,
) -> Result<()> {
    let request = tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream))
        .await
        .context("request not read in time")??;
    received.lock().unwrap().push(request.clone());
    let handler = handler.lock().unwrap().clone();
    let reply = handler(&request);
    tokio::time::sleep(reply.delay).await;
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        reply.body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&reply.body).await?;
    stream.shutdown().await?;
    Ok(())
}

async fn read_request(stream: &mut TcpStream) -> Result<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_REQUEST {
            bail!("request head too large");
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the request head");
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_REQUEST {
        bail!("request body too large");
    }
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut body = buffer[head_end + 4..].to_vec();
    if chunked {
        // Clients that stream their body (no content-length) send it in
        // chunks; read up to the last, zero-sized one.
        while !body.ends_with(b"0\r\n\r\n") {
            if body.len() > MAX_REQUEST {
                bail!("request body too large");
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed before the request body");
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body = dechunk(&body)?;
    } else {
        while body.len() < length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed before the request body");
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
    }
    Ok(Received {
        method,
        path,
        headers,
        body,
    })
}

/// The payload of a chunked body.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line")?;
        let size = std::str::from_utf8(&raw[..line_end])?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            bail!("chunk shorter than its size");
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
