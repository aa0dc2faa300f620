//! The web app served by voting-api from the API's own origin: pages, built files, their
//! caching, and the security headers on pages and API responses.

use std::path::PathBuf;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app_with};

/// A built web app as `npm run build` lays it out, in a fresh directory.
fn built_web_app() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pollstream-web-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        r#"<!doctype html><html><head><meta name="pollstream-realtime-url" content="" />
<script type="module" src="/assets/index-Abc123.js"></script></head><body></body></html>"#,
    )
    .unwrap();
    std::fs::write(dir.join("assets/index-Abc123.js"), "console.log('poll');").unwrap();
    std::fs::write(
        dir.join("favicon.svg"),
        "<svg xmlns='http://www.w3.org/2000/svg'/>",
    )
    .unwrap();
    dir
}

async fn fetch(app: &TestApp, path: &str) -> (StatusCode, HeaderMap, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request failed");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .unwrap()
}

fn assert_security_headers(headers: &HeaderMap) {
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer");
    assert_eq!(header(headers, "x-frame-options"), "DENY");
    assert!(
        headers.get("set-cookie").is_none(),
        "no cookies: {headers:?}"
    );
}

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn pages_get_index_html_with_the_realtime_url_and_a_strict_csp() {
    let dir = built_web_app();
    let app = spawn_app_with(&[
        ("WEB_DIR", dir.to_str().unwrap()),
        ("REALTIME_PUBLIC_URL", "http://127.0.0.1:3003"),
    ])
    .await;
    for page in [
        "/",
        "/p/ABC234",
        "/screen/ABC234",
        "/console",
        "/console?next=/p/ABC234",
    ] {
        let (status, headers, body) = fetch(&app, page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            header(&headers, "content-type").starts_with("text/html"),
            "{page}"
        );
        assert_eq!(header(&headers, "cache-control"), "no-cache", "{page}");
        assert!(
            body.contains(r#"name="pollstream-realtime-url" content="http://127.0.0.1:3003""#),
            "{page}: {body}"
        );
        assert_eq!(
            header(&headers, "content-security-policy"),
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' http://127.0.0.1:3003 ws://127.0.0.1:3003; object-src 'none'; \
             base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
            "{page}"
        );
        assert_security_headers(&headers);
    }

    let (status, headers, body) = fetch(&app, "/assets/index-Abc123.js").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "console.log('poll');")
    );
    assert!(
        header(&headers, "content-type").contains("javascript"),
        "{headers:?}"
    );
    assert_eq!(
        header(&headers, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&headers, "content-security-policy"), API_CSP);
    assert_security_headers(&headers);
    let (status, headers, _) = fetch(&app, "/favicon.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn unknown_paths_and_api_errors_stay_json_with_the_api_headers() {
    let dir = built_web_app();
    let app = spawn_app_with(&[("WEB_DIR", dir.to_str().unwrap())]).await;
    for path in [
        "/api/v1/nowhere",
        "/api/v1/polls/ZZZZZZ",
        "/nowhere",
        "/assets/gone.js",
        "/p",
    ] {
        let (status, headers, body) = fetch(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            header(&headers, "content-type").starts_with("application/json"),
            "{path}"
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
        assert_eq!(
            header(&headers, "content-security-policy"),
            API_CSP,
            "{path}"
        );
        assert_security_headers(&headers);
    }
    let response = app
        .client
        .post(format!("{}/console", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "pages are read-only"
    );
    // Same origin for realtime-service: connect-src is the page's own.
    let (_, headers, body) = fetch(&app, "/").await;
    assert!(body.contains(r#"content="""#), "{body}");
    assert!(
        header(&headers, "content-security-policy").contains("connect-src 'self';"),
        "{headers:?}"
    );
    let (status, headers, _) = fetch(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-security-policy"), API_CSP);
    assert_security_headers(&headers);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_a_build_the_api_runs_alone() {
    let app = spawn_app_with(&[("WEB_DIR", "/nonexistent/pollstream-web")]).await;
    let (status, headers, body) = fetch(&app, "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "not_found");
    assert_security_headers(&headers);
}
