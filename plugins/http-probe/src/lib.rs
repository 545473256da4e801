//! Test fixture for granted outbound HTTP: every login GETs one URL over
//! `wasi:http` and is allowed when the answer is `200` with the body
//! `allow`; anything else (another status, another body, an HTTP error
//! from the host) denies with the reason. Redirects are followed the way
//! HTTP clients do, by sending a new request to the `Location`: each hop
//! passes the host's checks again.
//!
//! The URL: the CONNECT user name when it is a full `http://` or
//! `https://` URL, else `base` + "/" + the user name. Configuration:
//! `{"base": "http://127.0.0.1:PORT", "account": "APP1", "max_redirects": 3}`.

use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant, parse_config};

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "probe",
        generate_all,
    });
}

use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
use bindings::wasi::io::streams::StreamError;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    base: String,
    account: String,
    #[serde(default = "three")]
    max_redirects: u32,
}

fn three() -> u32 {
    3
}

pub struct HttpProbe(Config);

impl Authenticator for HttpProbe {
    fn configure(config: &str) -> Result<Self, String> {
        parse_config(config).map(HttpProbe)
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let user = request.connect.user.as_deref().unwrap_or_default();
        let mut url = if user.starts_with("http://") || user.starts_with("https://") {
            user.to_owned()
        } else {
            format!("{}/{user}", self.0.base.trim_end_matches('/'))
        };
        for _ in 0..=self.0.max_redirects {
            match get(&url) {
                Err(e) => return Decision::Deny(format!("GET {url}: {e}")),
                Ok(Answer::Redirect(location)) => url = resolve(&url, &location),
                Ok(Answer::Done(200, body)) if body.trim_ascii() == b"allow" => {
                    return Decision::Allow(Grant::new(self.0.account.clone()));
                }
                Ok(Answer::Done(status, body)) => {
                    return Decision::Deny(format!(
                        "GET {url}: status {status}, {} bytes",
                        body.len()
                    ));
                }
            }
        }
        Decision::Deny(format!("too many redirects, last {url}"))
    }
}

enum Answer {
    Redirect(String),
    Done(u16, Vec<u8>),
}

/// `location` relative to `url` (absolute URL or absolute path only).
fn resolve(url: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}{location}")
}

fn get(url: &str) -> Result<Answer, String> {
    let (scheme, rest) = url.split_once("://").ok_or("not an absolute URL")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => Scheme::Other(other.to_owned()),
    };
    request.set_method(&Method::Get).map_err(|()| "method")?;
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response after ready")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    if (300..400).contains(&status) {
        let location = response
            .headers()
            .get("location")
            .into_iter()
            .next()
            .ok_or("redirect without Location")?;
        return Ok(Answer::Redirect(
            String::from_utf8_lossy(&location).into_owned(),
        ));
    }
    let body = response.consume().map_err(|()| "body taken twice")?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| "stream taken twice")?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend(chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("body: {}", e.to_debug_string()));
                }
            }
        }
    }
    Ok(Answer::Done(status, bytes))
}

portcullis_sdk::export!(HttpProbe);
