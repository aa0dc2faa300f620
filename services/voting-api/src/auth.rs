//! The authenticated caller, taken from the `Authorization: Bearer` header.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// The subject of a valid bearer token: the voter, or the presenter creating a poll.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let claims = state
            .jwt
            .verify(token)
            .map_err(|err| ApiError::Unauthorized(err.to_string()))?;
        Ok(Caller {
            subject: claims.sub,
        })
    }
}
