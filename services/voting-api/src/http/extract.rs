//! Everything a handler takes from a request besides the state: the caller ([`Caller`],
//! [`MaybeCaller`]), the client's address ([`ClientIp`]), and the body, path and query string
//! ([`ApiJson`], [`ApiPath`], [`ApiQuery`]).
//!
//! Each rejects with an [`ApiError`], so every failure is JSON in our error format. Handlers
//! never take axum's own `Json`, `Path` or `Query`, whose rejections are `text/plain`:
//! `GET /api/v1/polls/%FF` is a JSON `400 invalid_path`, `?limit=abc` a JSON
//! `400 invalid_query`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use pollstream_infra::jwt::Role;
use pollstream_store::PollDefinition;
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The subject of a valid `Authorization: Bearer` token: the voter, or the presenter creating
/// a poll.
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

impl Caller {
    /// Fails with `403 guests_not_allowed` when the caller is a guest and `poll` needs accounts
    /// (`allowGuests: false`). A guest is a token whose `role` claim is `guest`, which only
    /// `POST /api/v1/auth/guest` issues (with a `guest-<uuid>` subject); accounts and tokens
    /// an operator mints (`scripts/token`) have the role `user`.
    pub fn require_account_for(&self, poll: &PollDefinition) -> Result<(), ApiError> {
        if self.role == Role::Guest && !poll.allow_guests {
            return Err(ApiError::forbidden(
                "guests_not_allowed",
                "this poll needs an account: register or log in to vote",
            ));
        }
        Ok(())
    }
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
            role: claims.role,
        })
    }
}

/// A [`Caller`] when the request carries a token, `None` when it carries none. A token that
/// is present but invalid is still `401`: silently treating it as anonymous would hide a bug.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

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

/// The address a request is attributed to, for per-IP limits: the TCP peer, or the first
/// `X-Forwarded-For` entry when `TRUST_FORWARDED_FOR` says a proxy in front sets it
/// (otherwise any client could pick its own address and dodge the limit).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .and_then(|first| first.trim().parse::<IpAddr>().ok())
        {
            return Ok(ClientIp(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or_else(|| ApiError::Internal("server started without connect info".into()))?;
        Ok(ClientIp(peer))
    }
}

/// `axum::Json` whose rejections become [`ApiError`]s in our error format.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// `axum::extract::Path` whose rejection is `400 invalid_path`.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

/// `axum::extract::Query` whose rejection is `400 invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}
