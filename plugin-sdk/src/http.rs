//! Outbound HTTP for plugins an operator granted hosts to
//! (`grants = { http = ["https://id.example.com"] }`): one blocking call,
//! [`send`], over the standard `wasi:http/outgoing-handler`.
//!
//! Why blocking: a plugin decides one login per call and has nothing else
//! to do while it waits, so an async runtime inside the component would
//! only add size. The host bounds every request by the login's deadline,
//! its allow-list and its response-size cap whatever the plugin asks; the
//! limits here ([`Request::timeout_ms`], [`Request::max_response_bytes`])
//! can only be tighter.
//!
//! Outside WebAssembly there is no host: [`send`] answers
//! [`Error::Unavailable`] unless a unit test installed a stand-in with
//! [`mock`], so plugin logic that calls HTTP tests natively.
//!
//! Enabled by the crate feature `http`; a plugin built without it (or
//! that never calls [`send`]) does not import `wasi:http` and needs no
//! grant.

use std::fmt;

/// Largest response body read unless a request says otherwise. The host
/// caps responses too (1 MiB by default); this keeps a plugin's memory
/// bounded even under a host configured larger.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Most bytes `blocking-write-and-flush` accepts per call (wasi:io).
#[cfg(target_arch = "wasm32")]
const WRITE_CHUNK: usize = 4096;

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute `http://` or `https://` URL (no user info, no fragment).
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// Request body; empty for none.
    pub body: Vec<u8>,
    /// Time allowed for connecting and for the first byte of the answer,
    /// in milliseconds; the host's deadline applies anyway.
    pub timeout_ms: Option<u64>,
    /// Longest response body read; longer is [`Error::TooLarge`].
    pub max_response_bytes: usize,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Request {
        Request {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// A POST of `body` (with `content_type`) to `url`.
    pub fn post(url: impl Into<String>, content_type: &str, body: Vec<u8>) -> Request {
        Request {
            method: "POST".into(),
            headers: vec![("content-type".into(), content_type.into())],
            body,
            ..Request::get(url)
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An HTTP response, body read in full.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    /// Header names (lower case) and values; values that are not UTF-8 are
    /// left out.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The URL is not an absolute http(s) URL this client sends.
    InvalidUrl(String),
    /// The request could not be built (a header the host refuses, ...).
    InvalidRequest(String),
    /// The host refused the request: outside the plugin's grant, or to an
    /// address it does not reach.
    Denied(String),
    /// No answer in time (the request's timeout or the login's deadline).
    Timeout,
    /// The response body is longer than allowed.
    TooLarge,
    /// Anything else on the way (DNS, connection, TLS, protocol).
    Failed(String),
    /// No host to send through (natively, without [`mock`]).
    Unavailable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            Error::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Error::Denied(why) => write!(f, "refused by the host: {why}"),
            Error::Timeout => write!(f, "no answer in time"),
            Error::TooLarge => write!(f, "response too large"),
            Error::Failed(why) => write!(f, "request failed: {why}"),
            Error::Unavailable => write!(f, "no outbound HTTP outside a Portcullis host"),
        }
    }
}

impl std::error::Error for Error {}

/// A URL split the way wasi:http takes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'u> {
    pub https: bool,
    /// `host[:port]`.
    pub authority: &'u str,
    /// Path and query, `/` when the URL has none.
    pub path_with_query: &'u str,
}

/// Split an absolute http(s) URL. User info is refused (credentials do not
/// belong in a URL that may reach a log); the fragment is dropped.
pub fn split_url(url: &str) -> Result<Target<'_>, Error> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(Error::InvalidUrl("not an http:// or https:// URL".into()));
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(Error::InvalidUrl("no host".into()));
    }
    if authority.contains('@') {
        return Err(Error::InvalidUrl("user info in a URL is refused".into()));
    }
    if authority
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(Error::InvalidUrl("bad character in the host".into()));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidUrl("bad character in the path".into()));
    }
    let path_with_query = match path {
        "" => "/",
        p if p.starts_with('/') => p,
        _ => return Err(Error::InvalidUrl("a query needs a path (`/?...`)".into())),
    };
    Ok(Target {
        https,
        authority,
        path_with_query,
    })
}

/// Send `request` and read the whole response (up to
/// [`Request::max_response_bytes`]). Blocks the plugin until the answer,
/// the timeout or the host's deadline.
pub fn send(request: &Request) -> Result<Response, Error> {
    split_url(&request.url)?;
    #[cfg(target_arch = "wasm32")]
    return wasi::send(request);
    #[cfg(not(target_arch = "wasm32"))]
    return native::send(request);
}

/// Answer [`send`] with `handler` on this thread, for unit tests outside
/// WebAssembly (each test runs on its own thread).
#[cfg(not(target_arch = "wasm32"))]
pub fn mock(handler: impl FnMut(&Request) -> Result<Response, Error> + 'static) {
    native::HANDLER.with(|h| *h.borrow_mut() = Some(Box::new(handler)));
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::{Error, Request, Response};
    use std::cell::RefCell;

    type Handler = Box<dyn FnMut(&Request) -> Result<Response, Error>>;

    thread_local! {
        pub static HANDLER: RefCell<Option<Handler>> = const { RefCell::new(None) };
    }

    pub fn send(request: &Request) -> Result<Response, Error> {
        HANDLER.with(|h| match h.borrow_mut().as_mut() {
            Some(handler) => handler(request),
            None => Err(Error::Unavailable),
        })
    }
}

#[cfg(target_arch = "wasm32")]
mod wasi {
    use super::{Error, Request, Response, WRITE_CHUNK, split_url};

    mod bindings {
        wit_bindgen::generate!({
            path: "wit-http",
            world: "client",
            // wit-bindgen 0.46 cannot resolve deps/cli.wit otherwise; the
            // world imports nothing of it.
            features: ["clocks-timezone"],
            generate_all,
        });
    }

    use bindings::wasi::http::outgoing_handler;
    use bindings::wasi::http::types::{
        ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions,
        Scheme,
    };
    use bindings::wasi::io::streams::StreamError;

    fn method(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.into()),
        }
    }

    fn error(code: ErrorCode) -> Error {
        match code {
            ErrorCode::HttpRequestDenied => Error::Denied("request denied".into()),
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => Error::Timeout,
            ErrorCode::HttpResponseBodySize(_) => Error::TooLarge,
            ErrorCode::InternalError(Some(why)) => Error::Failed(why),
            other => Error::Failed(format!("{other:?}")),
        }
    }

    pub fn send(request: &Request) -> Result<Response, Error> {
        let target = split_url(&request.url)?;
        let mut headers: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        // A body of known length goes with its length, not chunked: some
        // services refuse chunked requests.
        if !request.body.is_empty() && !headers.iter().any(|(n, _)| n == "content-length") {
            headers.push((
                "content-length".into(),
                request.body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&headers)
            .map_err(|e| Error::InvalidRequest(format!("headers: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let refused = |what: &str| Error::InvalidRequest(format!("{what} refused"));
        outgoing
            .set_method(&method(&request.method))
            .map_err(|()| refused("method"))?;
        let scheme = if target.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| refused("scheme"))?;
        outgoing
            .set_authority(Some(target.authority))
            .map_err(|()| refused("host"))?;
        outgoing
            .set_path_with_query(Some(target.path_with_query))
            .map_err(|()| refused("path"))?;
        let options = request.timeout_ms.map(|ms| {
            let options = RequestOptions::new();
            let ns = Some(ms.saturating_mul(1_000_000));
            // A host that does not take a timeout still has the deadline.
            let _ = options.set_connect_timeout(ns);
            let _ = options.set_first_byte_timeout(ns);
            let _ = options.set_between_bytes_timeout(ns);
            options
        });
        let body = outgoing.body().map_err(|()| refused("body"))?;
        // Hand the request over before writing its body: the host reads
        // the body while it sends, so a body larger than its buffer does
        // not block a write that nobody drains.
        let pending = outgoing_handler::handle(outgoing, options).map_err(error)?;
        {
            let stream = body.write().map_err(|()| refused("body"))?;
            for chunk in request.body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| Error::Failed(format!("writing the body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(error)?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(error(code)),
            Some(Err(())) | None => return Err(Error::Failed("no response".into())),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .filter_map(|(n, v)| Some((n, String::from_utf8(v).ok()?)))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| Error::Failed("response body taken".into()))?;
        let mut body = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| Error::Failed("response body taken".into()))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(bytes) => {
                        if body.len() + bytes.len() > request.max_response_bytes {
                            return Err(Error::TooLarge);
                        }
                        body.extend_from_slice(&bytes);
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(Error::Failed(format!(
                            "reading the body: {}",
                            e.to_debug_string()
                        )));
                    }
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        drop(response);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let t = split_url("https://id.example.com/realms/x?a=1#frag").unwrap();
        assert_eq!(
            t,
            Target {
                https: true,
                authority: "id.example.com",
                path_with_query: "/realms/x?a=1"
            }
        );
        let t = split_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.https, t.authority, t.path_with_query),
            (false, "127.0.0.1:8080", "/")
        );
    }

    #[test]
    fn urls_with_user_info_or_other_schemes_are_refused() {
        for url in [
            "ftp://x/",
            "https://user:secret@id.example.com/",
            "https:///path",
            "https://a b/",
            "id.example.com/x",
        ] {
            assert!(matches!(split_url(url), Err(Error::InvalidUrl(_))), "{url}");
        }
    }

    #[test]
    fn natively_without_a_stand_in_there_is_no_http() {
        assert_eq!(send(&Request::get("https://x/")), Err(Error::Unavailable));
        mock(|r| {
            Ok(Response {
                status: 200,
                body: r.url.as_bytes().to_vec(),
                ..Response::default()
            })
        });
        assert_eq!(
            send(&Request::get("https://x/")).unwrap().body,
            b"https://x/"
        );
    }
}
