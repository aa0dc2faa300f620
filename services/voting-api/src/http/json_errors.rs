//! Every error response is JSON, `{"error": "<code>", "message": "..."}`, whatever produced it.
//!
//! Handlers and the extractors of `extract.rs` answer with [`ApiError`]. The router's own
//! answers go through [`route_not_found`] and [`method_not_allowed`] (axum adds `Allow`).
//! [`ensure_json`] is the last line of defence, applied to every response (see
//! `every_request`): any `4xx`/`5xx` that is not JSON (from a layer, a rejection a future
//! handler forgets to wrap) is rewritten with a code for its status, keeping the status and
//! the headers.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use pollstream_wire::ErrorBody;

use crate::http::error::ApiError;

/// Most bytes of a plain-text error body kept as the message.
const MAX_MESSAGE_BYTES: usize = 1024;

/// Router fallback: `404 not_found` for a path no route has.
pub async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

/// Method fallback: `405 method_not_allowed` (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Rewrites an error response that is not JSON into the JSON error body; any other response
/// is returned as it is.
pub async fn ensure_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let message = match text {
        Some(text) if status.is_client_error() => text,
        // Server-side details stay in the log.
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let body = ErrorBody {
        error: code_for(status).to_owned(),
        message,
    };
    let json = serde_json::to_vec(&body).expect("an error body always serialises");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(json))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
        })
}

/// The code for an error status, the same [`ApiError`] uses where it has a variant for it.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized(String::new()).code(),
        StatusCode::NOT_FOUND => ApiError::RouteNotFound(String::new()).code(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(String::new()).code(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge.code(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(String::new()).code(),
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => ApiError::Internal(String::new()).code(),
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn call(
        router: Router,
        request: Request,
    ) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let allow = response
            .headers()
            .get(header::ALLOW)
            .map(|value| value.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (
            status,
            allow,
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    fn router() -> Router {
        Router::new()
            .route(
                "/plain",
                get(|| async { (StatusCode::BAD_REQUEST, "plain words") }),
            )
            .route(
                "/crash",
                get(|| async { (StatusCode::BAD_GATEWAY, "secret detail") }),
            )
            .route("/ok", get(|| async { "fine" }))
            .fallback(route_not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::middleware::from_fn(
                async |request: Request, next: axum::middleware::Next| {
                    ensure_json(next.run(request).await).await
                },
            ))
    }

    fn get_request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn plain_text_errors_become_json_with_a_code_for_their_status() {
        let (status, _, body) = call(router(), get_request("/plain")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "bad_request");
        assert_eq!(body["message"], "plain words");
        let (status, _, body) = call(router(), get_request("/crash")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["error"], "internal");
        assert_eq!(
            body["message"], "bad gateway",
            "details of a 5xx stay in the log"
        );
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_json_and_405_keeps_allow() {
        let (status, _, body) = call(router(), get_request("/nowhere")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let delete = Request::builder()
            .method(Method::DELETE)
            .uri("/ok")
            .body(Body::empty())
            .unwrap();
        let (status, allow, body) = call(router(), delete).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "method_not_allowed");
        assert_eq!(allow.as_deref(), Some("GET,HEAD"));
    }

    #[tokio::test]
    async fn successes_are_left_alone() {
        let response = router().oneshot(get_request("/ok")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(&body[..], b"fine");
    }
}
