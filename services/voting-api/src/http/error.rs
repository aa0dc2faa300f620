//! The one HTTP error type of voting-api and the status code each variant maps to.
//!
//! Client mistakes carry a stable `error` code and a message naming what is wrong.
//! Dependency failures are `503` so clients retry; anything unexpected is a logged `500`
//! whose details stay in the log.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pollstream_infra::log_throttle::LogThrottle;
use pollstream_wire::ErrorBody;

use crate::metric_names::DATABASE_ERRORS_TOTAL;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad JSON, a path or query string that does not parse.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Missing, expired or invalid bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed to do this.
    #[error("{message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// What is not allowed.
        message: String,
    },
    /// No such poll.
    #[error("no poll with code or id {0:?}")]
    PollNotFound(String),
    /// No route has this path.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The path exists, but not with this method; the response carries `Allow`.
    #[error("{0} is not allowed here; the `Allow` header lists the methods that are")]
    MethodNotAllowed(String),
    /// The body is not in a media type the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many requests in the current window.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// A state conflict: already voted, poll closed.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Well-formed but invalid content: unknown option, too many choices.
    #[error("{message}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The body is larger than allowed.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive within the header-read timeout.
    #[error("{0}")]
    BodyTimeout(crate::http::body_deadline::BodyTimedOut),
    /// A dependency (Kafka, Redis, PostgreSQL) cannot serve the request right now.
    #[error("{dependency} is unavailable")]
    Unavailable {
        /// Which one.
        dependency: &'static str,
        /// The underlying error, logged only.
        detail: String,
    },
    /// Kafka has the vote, but its lock was taken while the poll's vote locks were being
    /// restored (Redis lost them, or they expired), and its ballot was not confirmed as the
    /// voter's one in time. Not known to be counted; retrying is safe: the voter has at most
    /// one ballot, and `GET /api/v1/votes/{code}/me` says which.
    #[error(
        "your vote was received but could not be confirmed yet, because this poll's vote records are being checked; retry shortly"
    )]
    Unconfirmed,
    /// This instance already serves as many votes as it may at once; retry shortly.
    #[error("too many votes in flight on this instance, retry shortly")]
    Overloaded,
    /// A bug or an unexpected state; logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// `422` with `code` and `message`.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// `409` with `code` and `message`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// `403` with `code` and `message`.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// `503` for `dependency`, keeping `err` for the log.
    pub fn unavailable(dependency: &'static str, err: impl std::fmt::Display) -> Self {
        ApiError::Unavailable {
            dependency,
            detail: err.to_string(),
        }
    }

    /// The stable code sent as `error`, also used as a metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::PollNotFound(_) => "poll_not_found",
            ApiError::RouteNotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::UnsupportedMediaType(_) => "unsupported_content_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::Unavailable { dependency, .. } => match *dependency {
                "kafka" => "kafka_unavailable",
                "redis" => "redis_unavailable",
                _ => "database_unavailable",
            },
            ApiError::Overloaded => "overloaded",
            ApiError::Unconfirmed => "vote_unconfirmed",
            ApiError::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::PollNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable { .. } | ApiError::Overloaded | ApiError::Unconfirmed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A PostgreSQL that cannot be reached, is shutting down or restarting is `503
/// database_unavailable` (with `Retry-After`, as every dependency's `503`); any other database
/// error is a bug or a broken invariant, a logged `500`.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if is_outage(&err) {
            ApiError::unavailable("postgres", err)
        } else {
            ApiError::Internal(format!("database: {err}"))
        }
    }
}

/// Whether `err` says the database cannot serve right now rather than refused the request:
/// no connection (refused, lost, pool timed out), or the server's own SQLSTATE class 08
/// (connection exception), 53300 (too many connections), 57P01 to 57P03 (shutting down,
/// crashed, starting up: what a restart answers).
fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "53300" | "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if let Some(timed_out) = crate::http::body_deadline::timed_out(&rejection) {
            return ApiError::BodyTimeout(timed_out);
        }
        match rejection {
            JsonRejection::JsonDataError(err) => ApiError::unprocessable(
                "invalid_body",
                format!(
                    "the request body does not match the expected shape: {}",
                    err.body_text()
                ),
            ),
            JsonRejection::JsonSyntaxError(err) => ApiError::BadRequest {
                code: "malformed_json",
                message: format!("the request body is not valid JSON: {}", err.body_text()),
            },
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected a body with `Content-Type: application/json`".into(),
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::BadRequest {
                code: "bad_request",
                message: other.body_text(),
            },
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(err) => ApiError::BadRequest {
                code: "invalid_path",
                message: format!("the request path is not valid: {}", err.body_text()),
            },
            other => ApiError::Internal(format!("path extraction: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_query",
            message: format!("the query string is not valid: {}", rejection.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Unavailable { dependency, detail } => {
                if *dependency == "postgres" {
                    metrics::counter!(DATABASE_ERRORS_TOTAL).increment(1);
                }
                if let Some(held_back) = unavailable_log(dependency).admit() {
                    tracing::warn!(dependency, error = %detail, held_back, "Dependency unavailable");
                }
                format!("{dependency} is unavailable, retry shortly")
            }
            ApiError::Internal(detail) => {
                if detail.starts_with("database") {
                    metrics::counter!(DATABASE_ERRORS_TOTAL).increment(1);
                }
                tracing::error!(error = %detail, "Request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = Json(ErrorBody {
            error: self.code().to_owned(),
            message,
        });
        match self {
            ApiError::Unauthorized(_) => {
                (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
            }
            ApiError::Unavailable { .. } | ApiError::Overloaded => {
                (status, [(header::RETRY_AFTER, "1".to_owned())], body).into_response()
            }
            // The aggregator flushes every two seconds: no point asking every second.
            ApiError::Unconfirmed => {
                (status, [(header::RETRY_AFTER, "2".to_owned())], body).into_response()
            }
            ApiError::RateLimited { retry_after_secs } => (
                status,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                body,
            )
                .into_response(),
            _ => (status, body).into_response(),
        }
    }
}

/// One "Dependency unavailable" line a second per dependency: while one is down, every request
/// fails the same way, and a line each would flood the logs (`held_back` counts the others).
fn unavailable_log(dependency: &str) -> &'static LogThrottle {
    static KAFKA: LogThrottle = LogThrottle::new(1_000);
    static REDIS: LogThrottle = LogThrottle::new(1_000);
    static POSTGRES: LogThrottle = LogThrottle::new(1_000);
    match dependency {
        "kafka" => &KAFKA,
        "redis" => &REDIS,
        _ => &POSTGRES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_cannot_answer_is_503_with_retry_after() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            let response = ApiError::from(err).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .map(|v| v.as_bytes()),
                Some(&b"1"[..])
            );
        }
    }

    #[test]
    fn other_database_errors_stay_internal() {
        let err = ApiError::from(sqlx::Error::RowNotFound);
        assert_eq!(err.code(), "internal");
    }
}
