//! Which pages may open a Socket.IO session, on either transport: a request that carries an
//! `Origin` header is served only when that origin is listed in `REALTIME_ALLOWED_ORIGINS` or
//! is the request's own (its host and port are those of the `Host` header); any other gets
//! `403 origin_not_allowed` before socketioxide sees it, so no session is created.
//!
//! CORS alone does not do this: it only tells a browser whether a page may *read* a
//! long-polling answer (the request itself was served), and browsers do not apply it to
//! WebSockets at all, so any page on the web could open a socket here in its visitors'
//! browsers. A request without `Origin` is not a browser page's (native apps, server-side
//! clients, the load tools and Node's socket.io-client send none) and is served as before.
//!
//! Behind a reverse proxy that rewrites `Host` (to the upstream's name), same-origin pages no
//! longer match it: list the public origin then. ingress-nginx and compose keep `Host`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pollstream_wire::ErrorBody;

use crate::metric_names;

/// The origins listed in `REALTIME_ALLOWED_ORIGINS`, besides each request's own, that may
/// open Socket.IO sessions; cheap to clone (one per request).
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedOrigins {
    /// Compared as browsers send them, with scheme and host in lowercase.
    listed: Arc<[Origin]>,
}

impl AllowedOrigins {
    /// The rule for the origins of `REALTIME_ALLOWED_ORIGINS` (already checked by `Config`;
    /// an entry that is not an origin could never match and is left out).
    pub(crate) fn new(listed: &[String]) -> Self {
        Self {
            listed: listed.iter().filter_map(|o| Origin::parse(o)).collect(),
        }
    }

    /// Whether a page of `origin` (an `Origin` header's value) may connect, on a request whose
    /// `Host` header is `host`. `Origin: null` (sandboxed frames, `file:` pages) never may.
    fn allows(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Some(origin) = origin.to_str().ok().and_then(Origin::parse) else {
            return false;
        };
        self.listed.contains(&origin) || host.is_some_and(|host| origin.is_served_by(host))
    }
}

/// A page's origin, as a browser sends it in `Origin`: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// `http` or `https`, lowercase.
    scheme: String,
    /// Host name or address, lowercase (`[...]` kept around an IPv6 address).
    host: String,
    /// The explicit port, else the scheme's default (browsers leave 80 and 443 out).
    port: u16,
}

impl Origin {
    /// Parses `value`; `None` unless it is an http(s) origin with nothing after the port.
    fn parse(value: &str) -> Option<Self> {
        let uri: Uri = value.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = uri.authority()?;
        let bare = !value.ends_with('/')
            && uri.path() == "/"
            && uri.query().is_none()
            && !authority.as_str().contains('@');
        bare.then(|| Self {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
            scheme,
        })
    }

    /// Whether `host` (a `Host` header) names this origin's host and port: the page and the
    /// socket are served by the same address. `Host` carries no scheme, so a port it leaves
    /// out is this origin's scheme's default.
    fn is_served_by(&self, host: &HeaderValue) -> bool {
        let Some(host) = host
            .to_str()
            .ok()
            .and_then(|host| host.parse::<Authority>().ok())
        else {
            return false;
        };
        host.host().eq_ignore_ascii_case(&self.host)
            && host.port_u16().unwrap_or(self.default_port()) == self.port
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }
}

/// Middleware for the Socket.IO routes: passes requests without `Origin` or from an allowed
/// origin, answers any other with `403` and `{"error": "origin_not_allowed", "message"}`.
pub(crate) async fn refuse_other_origins(
    State(allowed): State<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let Some(origin) = headers.get(header::ORIGIN) else {
        return next.run(request).await;
    };
    if allowed.allows(origin, headers.get(header::HOST)) {
        return next.run(request).await;
    }
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    metrics::counter!(metric_names::ORIGINS_REFUSED_TOTAL).increment(1);
    tracing::debug!(origin, host = ?headers.get(header::HOST), "Refused a Socket.IO request from another origin");
    let body = ErrorBody::new(
        "origin_not_allowed",
        format!(
            "pages of origin {origin:?} may not connect here: it is neither this server's \
             origin nor listed in REALTIME_ALLOWED_ORIGINS"
        ),
    );
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(listed: &[&str], origin: &str, host: Option<&str>) -> bool {
        let listed: Vec<String> = listed.iter().map(|&o| o.to_owned()).collect();
        AllowedOrigins::new(&listed).allows(
            &HeaderValue::from_str(origin).unwrap(),
            host.map(|h| HeaderValue::from_str(h).unwrap()).as_ref(),
        )
    }

    #[test]
    fn a_listed_origin_is_allowed_whatever_the_case_of_scheme_and_host() {
        let listed = ["http://localhost:3001", "https://Polls.Example.org"];
        let host = Some("realtime.internal:3003");
        assert!(allows(&listed, "http://localhost:3001", host));
        assert!(allows(&listed, "HTTP://LOCALHOST:3001", host));
        assert!(allows(&listed, "https://polls.example.org", host));
        // A browser leaves the default port out; an operator may not.
        assert!(allows(
            &["https://polls.example.org:443"],
            "https://polls.example.org",
            host
        ));
        for other in [
            "http://localhost:3002",
            "https://localhost:3001",
            "http://polls.example.org",
            "https://polls.example.org.evil.example",
            "http://localhost",
        ] {
            assert!(!allows(&listed, other, host), "{other}");
        }
    }

    #[test]
    fn the_requests_own_origin_is_allowed_with_an_empty_list() {
        assert!(allows(&[], "http://127.0.0.1:3003", Some("127.0.0.1:3003")));
        assert!(allows(
            &[],
            "https://Polls.example.org",
            Some("polls.example.org")
        ));
        assert!(allows(
            &[],
            "https://polls.example.org",
            Some("POLLS.example.org:443")
        ));
        assert!(allows(&[], "http://[::1]:3003", Some("[::1]:3003")));
        assert!(!allows(
            &[],
            "http://127.0.0.1:3001",
            Some("127.0.0.1:3003")
        ));
        assert!(!allows(
            &[],
            "http://localhost:3003",
            Some("127.0.0.1:3003")
        ));
        assert!(!allows(
            &[],
            "https://polls.example.org",
            Some("polls.example.org:80")
        ));
        assert!(!allows(&[], "http://127.0.0.1:3003", None));
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for value in [
            "null",
            "",
            "127.0.0.1:3003",
            "http://127.0.0.1:3003/",
            "http://127.0.0.1:3003/socket.io",
            "http://user@127.0.0.1:3003",
            "file:///tmp/page.html",
            "ws://127.0.0.1:3003",
        ] {
            assert!(
                !allows(&["http://127.0.0.1:3003"], value, Some("127.0.0.1:3003")),
                "{value:?}"
            );
        }
    }
}
