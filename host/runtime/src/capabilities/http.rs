//! Granted outbound HTTP: `wasi:http/outgoing-handler` with our own sender.
//!
//! wasmtime-wasi-http turns the guest's request into an `http::Request`
//! and hands it to [`WasiHttpHooks::send_request`]; ours checks it against
//! the plugin's grant and sends it itself, so every rule below holds for
//! every request a plugin makes, whatever client library it uses:
//!
//! - the URL is under a granted origin and path prefix (scheme, host, port,
//!   prefix; no dot segments or encoded separators that a server would
//!   normalise out of the prefix), else `HTTP-request-denied`;
//! - the host name is resolved here, every address checked, and the
//!   connection made to a checked address: loopback, private, link-local,
//!   metadata and other restricted addresses ([`grant::restricted`]) only
//!   when the grant names that address literally, so DNS (rebinding
//!   included) cannot aim a granted name at the host's own network;
//! - the login's remaining deadline bounds the whole exchange (queueing,
//!   DNS, connect, TLS, headers and every body read);
//! - the response body is capped while it streams, so a 100 MB answer costs
//!   the host at most the cap plus hyper's read buffer;
//! - at most [`HttpOptions::max_concurrent`] requests per plugin entry are
//!   in flight; the rest wait (within their deadline) without touching
//!   other plugins;
//! - TLS verifies against the system roots plus an optional CA file.
//!
//! Redirects: `outgoing-handler` never follows them; a 3xx goes back to the
//! guest, whose client may send a new request for the `Location`, which
//! passes every check above again. Hop-by-hop and `Host` headers cannot be
//! set by the guest (wasmtime-wasi-http's forbidden headers plus ours);
//! `Host` is always the request's own authority.
//!
//! GET responses are cached per plugin entry ([`cache`]).

pub mod cache;
pub mod grant;

use crate::state::HostState;
use cache::{Cache, CacheLimits, Lookup, RequestMode};
pub use grant::Origin;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::http::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use portcullis_protocol::logsafe::escape_within;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpCtx,
    WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// Largest response body a plugin receives when the operator sets none:
/// a JWKS or discovery document is a few KiB, a directory answer rarely
/// more; the cap stops a hostile or broken server from filling memory.
pub const DEFAULT_MAX_RESPONSE: u64 = 1 << 20;
/// Requests one plugin entry may have in flight when the operator sets no
/// limit: enough for the logins a pool serves at once, few enough that a
/// slow upstream holds few sockets.
pub const DEFAULT_MAX_CONCURRENT: usize = 16;
/// Headers a guest may not set besides wasmtime-wasi-http's defaults
/// (connection, keep-alive, proxy-*, transfer-encoding, upgrade, host,
/// http2-settings): the other hop-by-hop ones, which would let a plugin
/// change how the connection or the body is framed.
const MORE_FORBIDDEN_HEADERS: [&str; 3] = ["te", "trailer", "expect"];
/// Longest URL written to the log for a refused request.
const LOGGED_URL_CHARS: usize = 200;

/// Settings of one plugin entry's HTTP grant.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest response body, bytes.
    pub max_response: u64,
    /// Requests in flight at once.
    pub max_concurrent: usize,
    /// PEM file of CAs trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    pub cache: CacheLimits,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_response: DEFAULT_MAX_RESPONSE,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            ca_file: None,
            cache: CacheLimits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("http grant {entry:?}: {reason}")]
    Entry { entry: String, reason: String },
    #[error("http_ca_file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("http_max_concurrent must be at least 1")]
    Concurrency,
}

/// The origins one plugin entry may call and what bounds its calls.
/// Cheap to clone: every instance of the plugin holds one.
#[derive(Clone)]
pub struct HttpGrant(Arc<Shared>);

struct Shared {
    origins: Vec<Origin>,
    max_response: u64,
    permits: Arc<Semaphore>,
    /// Built only when an origin is https.
    tls: Option<tokio_rustls::TlsConnector>,
    cache: Cache,
}

impl std::fmt::Debug for HttpGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.origins.iter().map(ToString::to_string))
            .finish()
    }
}

/// Check every entry of a grant (config validation), without building TLS.
pub fn parse_entries(entries: &[String]) -> Result<Vec<Origin>, GrantError> {
    entries
        .iter()
        .map(|entry| {
            Origin::parse(entry).map_err(|reason| GrantError::Entry {
                entry: grant::redacted(entry),
                reason,
            })
        })
        .collect()
}

/// Read a PEM file of CA certificates for `http_ca_file`.
pub fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, GrantError> {
    crate::tls_roots::read_ca_file(path).map_err(|reason| GrantError::CaFile {
        path: path.to_owned(),
        reason,
    })
}

impl HttpGrant {
    pub fn new(entries: &[String], options: &HttpOptions) -> Result<HttpGrant, GrantError> {
        let origins = parse_entries(entries)?;
        if options.max_concurrent == 0 {
            return Err(GrantError::Concurrency);
        }
        let tls = if origins.iter().any(|o| o.https) {
            let mut roots = crate::tls_roots::system_roots().clone();
            if let Some(path) = &options.ca_file {
                for cert in read_ca_file(path)? {
                    roots.add(cert).map_err(|e| GrantError::CaFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| GrantError::CaFile {
                    path: options.ca_file.clone().unwrap_or_default(),
                    reason: e.to_string(),
                })?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(HttpGrant(Arc::new(Shared {
            origins,
            max_response: options.max_response,
            permits: Arc::new(Semaphore::new(options.max_concurrent)),
            tls,
            cache: Cache::new(options.cache),
        })))
    }

    pub fn origins(&self) -> &[Origin] {
        &self.0.origins
    }
}

/// Where a checked request goes.
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// The granted literal address, when the matching grant names one.
    address: Option<IpAddr>,
}

impl Shared {
    /// The grant entry `uri` falls under, or why it falls under none.
    fn check(&self, uri: &Uri) -> Result<Target, &'static str> {
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err("scheme is neither https nor http"),
        };
        let authority = uri.authority().ok_or("no host")?;
        if authority.as_str().contains('@') {
            return Err("user info in the URL");
        }
        let (host, port) =
            grant::split_host_port(authority.as_str()).map_err(|_| "unparsable host or port")?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        let path = uri.path();
        if grant::unsafe_path(path) {
            return Err("dot segments or encoded separators in the path");
        }
        let origin = self
            .origins
            .iter()
            .find(|o| o.allows(https, &host, port, path))
            .ok_or("outside the grant")?;
        Ok(Target {
            https,
            host,
            port,
            address: origin.address,
        })
    }
}

/// Per-instance view of the grant for wasmtime-wasi-http.
pub(crate) struct HttpHooks {
    plugin: Arc<str>,
    grant: Option<HttpGrant>,
    /// The current call's deadline, copied from `HostState` on every use.
    deadline: Instant,
    forbidden: ForbiddenHeaderFilter,
}

impl HttpHooks {
    pub(crate) fn new(plugin: Arc<str>, grant: Option<HttpGrant>) -> HttpHooks {
        let forbidden: ForbiddenHeaderFilter = Arc::new(|name: &HeaderName| {
            DEFAULT_FORBIDDEN_HEADERS.contains(name)
                || MORE_FORBIDDEN_HEADERS.contains(&name.as_str())
        });
        HttpHooks {
            plugin,
            grant,
            deadline: Instant::now(),
            forbidden,
        }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Sent = Result<(Response<WasiBody>, IoFuture), Error>;

impl WasiHttpHooks for HttpHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        self.forbidden.clone()
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let plugin = self.plugin.clone();
        let grant = self.grant.clone();
        let deadline = super::share_of(self.deadline);
        Box::new(async move {
            let Some(grant) = grant else {
                // Unreachable for a plugin loaded through `Plugin::granted`;
                // kept as the fail-closed answer for any other path.
                return Err(Error::HttpRequestDenied);
            };
            let url = escape_within(
                &grant::redacted(&request.uri().to_string()),
                LOGGED_URL_CHARS,
            );
            let who = Who {
                plugin: plugin.clone(),
                url: url.clone(),
            };
            let sent = send(&grant.0, request, deadline, who).await;
            match &sent {
                Ok(_) => {}
                Err(refusal) => tracing::warn!(
                    plugin = %plugin,
                    url = %url,
                    reason = %refusal,
                    "plugin HTTP request failed"
                ),
            }
            sent.map_err(Refusal::into_error)
                .map(|response| (response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// Why a request got no response, for the log and the guest's error code.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("refused: {0}")]
    Denied(&'static str),
    #[error("refused: {host} resolves to {address}, which is not granted by address")]
    Restricted { host: String, address: IpAddr },
    #[error("cannot resolve {0}")]
    Dns(String),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Hyper(hyper::Error),
    #[error("response body larger than {0} bytes (declared)")]
    TooLarge(u64),
    #[error("no response within the login's deadline")]
    Timeout,
}

impl Refusal {
    fn into_error(self) -> Error {
        match self {
            Refusal::Denied(_) => Error::HttpRequestDenied,
            Refusal::Restricted { .. } => Error::DestinationIpProhibited,
            Refusal::Dns(_) => Error::DnsError {
                rcode: None,
                info_code: None,
            },
            Refusal::Connect(e) => Error::Connect(e),
            Refusal::Tls(e) => Error::Tls(e),
            Refusal::Hyper(e) => Error::Hyper(e),
            Refusal::TooLarge(n) => Error::HttpResponseBodySize(Some(n)),
            Refusal::Timeout => Error::HttpResponseTimeout,
        }
    }
}

/// Whose request a body belongs to, for the warning when it is cut.
struct Who {
    plugin: Arc<str>,
    /// Escaped for the log.
    url: String,
}

async fn send(
    grant: &Arc<Shared>,
    request: Request<WasiBody>,
    deadline: Instant,
    who: Who,
) -> Result<Response<WasiBody>, Refusal> {
    let target = grant.check(request.uri()).map_err(Refusal::Denied)?;
    let exchange = exchange(grant, target, request, deadline, who);
    tokio::time::timeout_at(deadline.into(), exchange)
        .await
        .unwrap_or(Err(Refusal::Timeout))
}

async fn exchange(
    grant: &Arc<Shared>,
    target: Target,
    mut request: Request<WasiBody>,
    deadline: Instant,
    who: Who,
) -> Result<Response<WasiBody>, Refusal> {
    let get = request.method() == hyper::Method::GET;
    let url = request.uri().to_string();
    let mode = if get {
        cache::request_mode(request.headers())
    } else {
        RequestMode::Bypass
    };
    let cached = grant.cache.lookup(&url, request.headers(), mode);
    let revalidating = match &cached {
        Lookup::Fresh(entry) => return Ok(cached_response(entry)),
        Lookup::Revalidate(entry) => {
            if let Some(etag) = &entry.etag {
                request
                    .headers_mut()
                    .insert(header::IF_NONE_MATCH, etag.clone());
            }
            Some(entry.clone())
        }
        Lookup::Miss => None,
    };
    let request_headers = (mode != RequestMode::Bypass).then(|| request.headers().clone());

    let permit = grant
        .permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Refusal::Denied("grant closed"))?;
    let addresses = resolve(&target).await?;
    let tcp = connect(&addresses).await?;
    // Origin-form request target: hyper sends the URI as given, and an
    // absolute URI is the proxy form.
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    let (response, close) = if target.https {
        let tls = grant
            .tls
            .as_ref()
            .ok_or(Refusal::Denied("no TLS configuration"))?;
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| Refusal::Denied("not a TLS server name"))?;
        let stream = tls.connect(name, tcp).await.map_err(Refusal::Tls)?;
        roundtrip(stream, request, deadline).await?
    } else {
        roundtrip(tcp, request, deadline).await?
    };

    let (parts, body) = response.into_parts();
    if let Some(entry) = revalidating
        && parts.status == StatusCode::NOT_MODIFIED
    {
        let renewed = grant.cache.refreshed(&url, &entry, &parts.headers);
        return Ok(cached_response(&renewed));
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared
        && length > grant.max_response
    {
        return Err(Refusal::TooLarge(length));
    }
    let tee = match (&request_headers, parts.status) {
        (Some(request_headers), StatusCode::OK) => {
            cache::freshness(&parts.headers).map(|fresh_for| Tee {
                grant: grant.clone(),
                url,
                request_headers: request_headers.clone(),
                headers: parts.headers.clone(),
                fresh_for,
                body: Vec::new(),
            })
        }
        _ => None,
    };
    let body = Guarded {
        inner: body,
        read: 0,
        cap: grant.max_response,
        deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
        permit: Some(permit),
        close: Some(close),
        tee,
        done: false,
        who,
    };
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// The addresses to try for `target`, every one checked: a granted
/// literal is used as is; a name is resolved here and refused if any of
/// its addresses is restricted (one bad answer is enough to distrust the
/// name, and trying only the good ones would let a round-robin record
/// probe the inside).
async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, Refusal> {
    if let Some(address) = target.address {
        return Ok(vec![SocketAddr::new(address, target.port)]);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|_| Refusal::Dns(target.host.clone()))?
        .collect();
    if found.is_empty() {
        return Err(Refusal::Dns(target.host.clone()));
    }
    if let Some(bad) = found.iter().find(|a| grant::restricted(a.ip())) {
        return Err(Refusal::Restricted {
            host: target.host.clone(),
            address: bad.ip(),
        });
    }
    Ok(found)
}

/// Connect to the first checked address that answers.
async fn connect(addresses: &[SocketAddr]) -> Result<tokio::net::TcpStream, Refusal> {
    let mut last = None;
    for address in addresses {
        match tokio::net::TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Refusal::Connect(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
    })))
}

/// Send `request` on a new HTTP/1.1 connection over `stream`; the
/// connection is driven by a task that ends at `deadline`, or when the
/// returned sender (held by the response body) is dropped.
async fn roundtrip<S>(
    stream: S,
    request: Request<WasiBody>,
    deadline: Instant,
) -> Result<(Response<Incoming>, oneshot::Sender<()>), Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Refusal::Hyper)?;
    let (close, closed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = connection => {}
            _ = closed => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    });
    let response = sender.send_request(request).await.map_err(Refusal::Hyper)?;
    Ok((response, close))
}

fn cached_response(entry: &cache::Entry) -> Response<WasiBody> {
    let mut response = Response::new(
        Full::new(entry.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.headers_mut() = entry.headers.clone();
    // The stored length framed the original body; the guest gets this one.
    response.headers_mut().remove(header::TRANSFER_ENCODING);
    response
}

/// A response body as the guest reads it: capped, bounded by the
/// deadline, copied into the cache when it is storable and complete.
struct Guarded {
    inner: Incoming,
    read: u64,
    cap: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The plugin's concurrency slot, released at the end of the body.
    permit: Option<OwnedSemaphorePermit>,
    /// Dropping it ends the connection task.
    close: Option<oneshot::Sender<()>>,
    tee: Option<Tee>,
    done: bool,
    who: Who,
}

/// A storable response being copied for the cache.
struct Tee {
    grant: Arc<Shared>,
    url: String,
    request_headers: HeaderMap,
    headers: HeaderMap,
    fresh_for: Duration,
    body: Vec<u8>,
}

impl Guarded {
    fn finish(&mut self) {
        self.done = true;
        self.permit = None;
        self.close = None;
    }

    /// End the body early with `error`, saying why in the log.
    fn cut(&mut self, reason: &str, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.finish();
        self.tee = None;
        tracing::warn!(
            plugin = %self.who.plugin,
            url = %self.who.url,
            read = self.read,
            reason,
            "plugin HTTP response cut off"
        );
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.cut("the login's deadline passed", Error::HttpResponseTimeout);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.read > this.cap {
                        // Stop reading here: dropping the connection is what
                        // keeps the rest of the body out of the host.
                        let error = Error::HttpResponseBodySize(Some(this.read));
                        return this.cut("larger than http_max_response", error);
                    }
                    if let Some(tee) = &mut this.tee {
                        tee.body.extend_from_slice(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let reason = e.to_string();
                this.cut(&reason, Error::Hyper(e))
            }
            Poll::Ready(None) => {
                this.finish();
                if let Some(tee) = this.tee.take() {
                    tee.grant.cache.store(
                        &tee.url,
                        &tee.request_headers,
                        tee.headers,
                        Bytes::from(tee.body),
                        tee.fresh_for,
                    );
                }
                Poll::Ready(None)
            }
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (hooks, table, ctx) = self.http_parts();
        WasiHttpCtxView { hooks, table, ctx }
    }
}

/// What `HostState` keeps for wasi:http.
pub(crate) struct HttpState {
    pub hooks: HttpHooks,
    pub ctx: WasiHttpCtx,
}

impl HttpState {
    pub(crate) fn new(plugin: Arc<str>, grant: Option<HttpGrant>) -> HttpState {
        HttpState {
            hooks: HttpHooks::new(plugin, grant),
            ctx: WasiHttpCtx::new(),
        }
    }

    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.hooks.deadline = deadline;
    }
}
