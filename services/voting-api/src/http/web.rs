//! The web app (`web/`, built into `WEB_DIR`): `index.html` for the page routes, with the
//! realtime-service URL filled in, and the built files as they are.
//!
//! Everything else keeps the API's rules: a path under `/api/` or one that is neither a page
//! nor a file is a JSON `404`, and a method other than `GET`/`HEAD` on a page is one too. The
//! page contract is `web/README.md`'s ("What the page expects from the stack").

use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeDir;

use crate::http::error::ApiError;
use crate::http::json_errors;

/// `Cache-Control` of `/assets/*`: their names carry a hash of their content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of the pages and the other files: always revalidated, so a new build shows.
const REVALIDATE: &str = "no-cache";
/// The attribute pair in the built `index.html` that receives the realtime URL.
const REALTIME_META: &str = r#"name="pollstream-realtime-url" content="""#;

/// Where pages send their Socket.IO connection (`REALTIME_PUBLIC_URL`): an `http(s)` origin
/// such as `https://live.example.com` or `http://127.0.0.1:3003`, without a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeUrl {
    /// `http` or `https`.
    scheme: &'static str,
    /// Host and port as given.
    authority: String,
}

impl RealtimeUrl {
    /// Parses an `http(s)://host[:port]` origin (one trailing `/` allowed); `Err` says why not.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let (scheme, rest) = if let Some(rest) = value.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = value.strip_prefix("http://") {
            ("http", rest)
        } else {
            return Err("must start with http:// or https://".into());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
        if authority.is_empty() || !authority.chars().all(allowed) {
            return Err("must be an origin, scheme://host[:port], without a path".into());
        }
        Ok(Self {
            scheme,
            authority: authority.to_owned(),
        })
    }

    /// `scheme://host[:port]`, as the page's meta tag and `connect-src` take it.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The WebSocket form of the origin (`ws://` or `wss://`), which `connect-src` lists apart.
    pub fn websocket_origin(&self) -> String {
        let scheme = if self.scheme == "https" { "wss" } else { "ws" };
        format!("{scheme}://{}", self.authority)
    }
}

/// The built web app, read at start.
#[derive(Debug, Clone)]
pub struct WebApp {
    /// `index.html` with the realtime URL filled in.
    index: Bytes,
    /// The directory's files.
    files: ServeDir,
}

impl WebApp {
    /// Reads `dir/index.html` and fills in `realtime`; `None` (logged) when there is no build,
    /// so the API runs without pages.
    pub fn load(dir: &Path, realtime: Option<&RealtimeUrl>) -> Option<Self> {
        let index_path = dir.join("index.html");
        let html = match std::fs::read_to_string(&index_path) {
            Ok(html) => html,
            Err(err) => {
                tracing::info!(web_dir = %dir.display(), error = %err,
                    "No built web app: serving the API only (build it with `npm ci && npm run build` in web/)");
                return None;
            }
        };
        let html = match realtime {
            Some(url) if html.contains(REALTIME_META) => html.replacen(
                REALTIME_META,
                &format!(
                    r#"name="pollstream-realtime-url" content="{}""#,
                    url.origin()
                ),
                1,
            ),
            Some(_) => {
                tracing::warn!(web_dir = %dir.display(),
                    "index.html has no pollstream-realtime-url meta tag: pages use their own origin");
                html
            }
            None => html,
        };
        tracing::info!(web_dir = %dir.display(), realtime = ?realtime.map(RealtimeUrl::origin),
            "Serving the web app");
        Some(Self {
            index: Bytes::from(html),
            files: ServeDir::new(dir).append_index_html_on_directories(false),
        })
    }
}

/// The paths that are pages of the web app: `index.html` answers them all.
pub fn is_page(path: &str) -> bool {
    path == "/"
        || path == "/index.html"
        || path.starts_with("/p/")
        || path.starts_with("/screen/")
        || path.starts_with("/console")
}

/// Router fallback: a page, a built file, or the JSON `404` of an unknown route.
pub async fn fallback(web: Option<Arc<WebApp>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    let Some(web) = web
        .as_deref()
        .filter(|_| readable && !path.starts_with("/api/"))
    else {
        return json_errors::route_not_found(request.uri().clone())
            .await
            .into_response();
    };
    if is_page(&path) {
        return (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, REVALIDATE),
            ],
            web.index.clone(),
        )
            .into_response();
    }
    let uri = request.uri().clone();
    let response = match web.files.clone().try_call(request).await {
        Ok(response) => response,
        Err(err) => return ApiError::Internal(format!("reading {path}: {err}")).into_response(),
    };
    if response.status() == StatusCode::NOT_FOUND {
        return json_errors::route_not_found(uri).await.into_response();
    }
    let mut response = response.map(Body::new);
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let cache = if path.starts_with("/assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}

/// `WEB_DIR`'s default: the build in the repository, relative to the working directory.
pub const DEFAULT_DIR: &str = "web/dist";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_urls_are_origins() {
        let url = RealtimeUrl::parse("http://127.0.0.1:3003/").unwrap();
        assert_eq!(url.origin(), "http://127.0.0.1:3003");
        assert_eq!(url.websocket_origin(), "ws://127.0.0.1:3003");
        let url = RealtimeUrl::parse("https://live.example.com").unwrap();
        assert_eq!(url.websocket_origin(), "wss://live.example.com");
        for bad in [
            "live.example.com",
            "ftp://x",
            "https://",
            "https://x/socket.io",
            "https://x\" onload=\"y",
            "https://x; script-src *",
        ] {
            assert!(RealtimeUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_are_the_routes_the_front_end_has() {
        for page in ["/", "/p/ABC123", "/screen/ABC123", "/console", "/console/x"] {
            assert!(is_page(page), "{page}");
        }
        for other in [
            "/assets/index.js",
            "/favicon.svg",
            "/api/v1/polls",
            "/p",
            "/vote",
        ] {
            assert!(!is_page(other), "{other}");
        }
    }
}
