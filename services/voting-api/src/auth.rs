//! The authenticated caller, taken from the `Authorization: Bearer` header.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use pollstream_infra::jwt::Role;

use crate::error::ApiError;
use crate::state::AppState;

/// The subject of a valid bearer token: the voter, or the presenter creating a poll.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
    /// Account or guest.
    pub role: Role,
}

impl Caller {
    /// Fails with `403` for guests: creating and managing polls needs an account.
    pub fn require_account(&self) -> Result<(), ApiError> {
        match self.role {
            Role::User => Ok(()),
            Role::Guest => Err(ApiError::forbidden(
                "account_required",
                "guests can vote but not create or manage polls; register or log in",
            )),
        }
    }
}

/// A [`Caller`] when the request carries a token, `None` when it carries none. A token that
/// is present but invalid is still `401`: silently treating it as anonymous would hide a bug.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

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
            role: claims.role,
        })
    }
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            Ok(MaybeCaller(Some(
                Caller::from_request_parts(parts, state).await?,
            )))
        } else {
            Ok(MaybeCaller(None))
        }
    }
}
