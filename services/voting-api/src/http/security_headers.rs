//! Security headers on every response, pages and API alike: the web app is served from the
//! API's origin, so a page that could run a foreign script or be framed would act with its
//! users' tokens.
//!
//! An HTML page gets a Content-Security-Policy that allows only this origin's scripts, styles
//! and images (the built page has no inline script or style) and connections to this origin
//! and to realtime-service when it is elsewhere; every other response (JSON, the built files)
//! gets one that allows nothing. All get `nosniff`, `no-referrer` and `DENY` framing. No
//! response sets a cookie: the web app keeps its tokens in `localStorage`.

use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::http::web::RealtimeUrl;

/// CSP of everything that is not a page: nothing may load, nothing may frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The page CSP, with `realtime`'s origin and its WebSocket form in `connect-src` when set.
pub fn page_csp(realtime: Option<&RealtimeUrl>) -> String {
    let connect = match realtime {
        Some(url) => format!("'self' {} {}", url.origin(), url.websocket_origin()),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
         form-action 'self'"
    )
}

/// The header values, built once at start.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    page_csp: HeaderValue,
}

impl SecurityHeaders {
    /// Headers for a service whose pages connect to `realtime` (or their own origin).
    pub fn new(realtime: Option<&RealtimeUrl>) -> Self {
        Self {
            page_csp: HeaderValue::from_str(&page_csp(realtime))
                .expect("a parsed realtime URL holds only header-safe characters"),
        }
    }
}

impl SecurityHeaders {
    /// Adds the security headers to `response`, the page CSP to HTML.
    pub fn add_to(&self, response: &mut Response) {
        let is_page = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("text/html"));
        let csp = if is_page {
            self.page_csp.clone()
        } else {
            HeaderValue::from_static(API_CSP)
        };
        let set = response.headers_mut();
        set.insert(header::CONTENT_SECURITY_POLICY, csp);
        set.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        set.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        set.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_csp_names_realtime_service_only_when_it_is_elsewhere() {
        let same_origin = page_csp(None);
        assert!(same_origin.contains("connect-src 'self';"), "{same_origin}");
        assert!(!same_origin.contains("unsafe-inline"), "{same_origin}");
        let url = RealtimeUrl::parse("https://live.example.com").unwrap();
        let elsewhere = page_csp(Some(&url));
        assert!(
            elsewhere
                .contains("connect-src 'self' https://live.example.com wss://live.example.com;"),
            "{elsewhere}"
        );
    }
}
