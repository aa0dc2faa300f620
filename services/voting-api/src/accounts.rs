//! Accounts: register, log in, rotate refresh tokens, log out, and guest tokens.
//!
//! Access tokens are short-lived JWTs. Refresh tokens are opaque random strings stored only as
//! SHA-256 hashes; each use rotates it, and presenting one that was already used revokes its
//! whole family (every token descended from the same login), since that means it leaked.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use pollstream_infra::jwt::Role;
use pollstream_store::accounts::{self, RefreshToken};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ClientIp};
use crate::rate_limit::{self, Limit};
use crate::state::AppState;

/// Routes under `/api/v1/auth`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(guest))
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Case-insensitive; stored lower-cased. Surrounding whitespace is ignored; once trimmed,
    /// 3 to 254 bytes, `local@domain` with a dot inside the domain, no whitespace or control
    /// characters.
    #[schema(schema_with = crate::http::schema::email)]
    email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// A refresh token presented for rotation or logout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// Tokens for an account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    user_id: Uuid,
    access_token: String,
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
}

/// A token for an anonymous participant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestSession {
    /// The fresh random subject the token identifies.
    subject: String,
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// Counts an account request (register, login, refresh) against `RATE_LIMIT_AUTH_PER_IP`.
async fn limit_auth(state: &AppState, ip: ClientIp) -> Result<(), ApiError> {
    let limits = &state.config.rate_limits;
    limit_per_ip(state, "auth", ip, limits.auth_per_ip).await
}

/// Counts a guest token request against `RATE_LIMIT_GUEST_PER_IP`, a counter of its own: a
/// hall of guests behind one address must not use up its account requests, nor the reverse.
async fn limit_guest(state: &AppState, ip: ClientIp) -> Result<(), ApiError> {
    let limits = &state.config.rate_limits;
    limit_per_ip(state, "guest", ip, limits.guest_per_ip).await
}

async fn limit_per_ip(
    state: &AppState,
    kind: &str,
    ip: ClientIp,
    max: u64,
) -> Result<(), ApiError> {
    let limits = &state.config.rate_limits;
    let mut redis = state.redis.clone();
    rate_limit::check(
        &mut redis,
        limits.window,
        &[Limit {
            key: format!("{}:{kind}:ip:{}", limits.namespace, ip.0),
            max,
        }],
    )
    .await
}

fn normalise_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = (3..=254).contains(&email.len())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(ApiError::unprocessable(
            "invalid_email",
            "`email` must be a valid email address",
        ))
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "weak_password",
            "`password` must be 8 to 128 characters",
        ))
    }
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    // Argon2id is deliberately slow: keep it off the async worker threads.
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|err| ApiError::Internal(format!("hashing task: {err}")))?
    .map_err(|err| ApiError::Internal(format!("hashing: {err}")))
}

async fn verify_password(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|err| ApiError::Internal(format!("verification task: {err}")))
}

fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    (token, hash)
}

/// Issues an access token and stores a new refresh token in `family`.
async fn open_session(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    family: Uuid,
) -> Result<Session, ApiError> {
    let (refresh_token, hash) = new_refresh_token();
    let expires_at = Utc::now() + state.config.refresh_token_ttl;
    accounts::insert_refresh_token(&mut *conn, family, user_id, &hash, expires_at).await?;
    Ok(Session {
        user_id,
        access_token: state.jwt.issue_as(
            &user_id.to_string(),
            Role::User,
            state.config.access_token_ttl,
        ),
        refresh_token,
        token_type: "Bearer",
        expires_in: state.config.access_token_ttl.as_secs(),
    })
}

/// Creates an account and logs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = Session), (status = 400, body = pollstream_wire::ErrorBody, description = "malformed JSON"),
        (status = 422, body = pollstream_wire::ErrorBody, description = "invalid email, weak password, or not the documented shape"),
        (status = 409, body = pollstream_wire::ErrorBody, description = "email taken"),
        (status = 429, body = pollstream_wire::ErrorBody), (status = 503, body = pollstream_wire::ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    limit_auth(&state, ip).await?;
    let email = normalise_email(&credentials.email)?;
    check_password(&credentials.password)?;
    let hash = hash_password(credentials.password).await?;
    let user_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    if !accounts::insert_user(&mut *tx, user_id, &email, &hash).await? {
        return Err(ApiError::conflict(
            "email_taken",
            "an account with this email already exists",
        ));
    }
    let session = open_session(&state, &mut tx, user_id, Uuid::now_v7()).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user_id, "Account registered");
    Ok((StatusCode::CREATED, Json(session)))
}

/// Logs in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = Session), (status = 400, body = pollstream_wire::ErrorBody, description = "malformed JSON"),
        (status = 422, body = pollstream_wire::ErrorBody, description = "the body does not have the documented shape"),
        (status = 401, body = pollstream_wire::ErrorBody, description = "wrong email or password"),
        (status = 429, body = pollstream_wire::ErrorBody), (status = 503, body = pollstream_wire::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Json<Session>, ApiError> {
    limit_auth(&state, ip).await?;
    // An address register would refuse has no account; PostgreSQL never sees it (it refuses
    // U+0000 in text outright).
    let user: Option<(Uuid, String)> = match normalise_email(&credentials.email) {
        Ok(email) => accounts::user_by_email(&state.db, &email).await?,
        Err(_) => None,
    };
    let invalid = || ApiError::Unauthorized("wrong email or password".into());
    let Some((user_id, hash)) = user else {
        // Same work as a real check, so response time does not reveal which emails exist.
        let _ = verify_password(credentials.password, DUMMY_HASH.to_owned()).await;
        return Err(invalid());
    };
    if !verify_password(credentials.password, hash).await? {
        return Err(invalid());
    }
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        open_session(&state, &mut conn, user_id, Uuid::now_v7()).await?,
    ))
}

/// An Argon2id hash of a random password, verified against when the email is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2y5Ij4v4oVnqq2rmfTz0hB1yb0Ug8TXpcM3o3bH8EvI";

/// Trades a refresh token for a new pair; the old one stops working.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 400, body = pollstream_wire::ErrorBody, description = "malformed JSON"),
        (status = 422, body = pollstream_wire::ErrorBody, description = "the body does not have the documented shape"),
        (status = 401, body = pollstream_wire::ErrorBody, description = "unknown, expired, revoked or reused token"),
        (status = 429, body = pollstream_wire::ErrorBody), (status = 503, body = pollstream_wire::ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<Session>, ApiError> {
    limit_auth(&state, ip).await?;
    let hash = Sha256::digest(request.refresh_token.as_bytes()).to_vec();
    let mut tx = state.db.begin().await?;
    let row = accounts::lock_refresh_token(&mut *tx, &hash).await?;
    let Some(RefreshToken {
        id,
        family_id: family,
        user_id,
        expires_at,
        used_at,
        revoked_at,
    }) = row
    else {
        return Err(ApiError::Unauthorized("unknown refresh token".into()));
    };
    if revoked_at.is_some() {
        return Err(ApiError::Unauthorized(
            "this refresh token was revoked; log in again".into(),
        ));
    }
    if used_at.is_some() {
        accounts::revoke_family(&mut *tx, family).await?;
        tx.commit().await?;
        tracing::warn!(user_id = %user_id, family = %family, "Refresh token reused; family revoked");
        return Err(ApiError::Unauthorized(
            "this refresh token was already used; every session of this login is revoked, log in again".into(),
        ));
    }
    if expires_at <= Utc::now() {
        return Err(ApiError::Unauthorized(
            "this refresh token has expired; log in again".into(),
        ));
    }
    accounts::mark_refresh_token_used(&mut *tx, id).await?;
    let session = open_session(&state, &mut tx, user_id, family).await?;
    tx.commit().await?;
    Ok(Json(session))
}

/// Revokes the refresh token's whole family. Unknown tokens are accepted silently.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "logged out"), (status = 400, body = pollstream_wire::ErrorBody, description = "malformed JSON"),
        (status = 422, body = pollstream_wire::ErrorBody, description = "the body does not have the documented shape"),
        (status = 503, body = pollstream_wire::ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let hash = Sha256::digest(request.refresh_token.as_bytes()).to_vec();
    accounts::revoke_family_of(&state.db, &hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An access token for an anonymous participant with a fresh random subject (`guest-<uuid>`,
/// role `guest`), valid for `GUEST_TOKEN_TTL_SECS`; limited per address by
/// `RATE_LIMIT_GUEST_PER_IP`, apart from register and login.
#[utoipa::path(post, path = "/api/v1/auth/guest", tag = "auth",
    responses((status = 201, body = GuestSession), (status = 429, body = pollstream_wire::ErrorBody), (status = 503, body = pollstream_wire::ErrorBody)))]
async fn guest(
    State(state): State<AppState>,
    ip: ClientIp,
) -> Result<(StatusCode, Json<GuestSession>), ApiError> {
    limit_guest(&state, ip).await?;
    let subject = format!("guest-{}", Uuid::new_v4());
    let ttl = state.config.guest_token_ttl;
    Ok((
        StatusCode::CREATED,
        Json(GuestSession {
            access_token: state.jwt.issue_as(&subject, Role::Guest, ttl),
            subject,
            token_type: "Bearer",
            expires_in: ttl.as_secs(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@.com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn dummy_hash_parses_so_unknown_emails_cost_a_real_verification() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn refresh_tokens_are_random_and_only_their_hash_is_kept() {
        let (a, hash_a) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(hash_a, Sha256::digest(a.as_bytes()).to_vec());
        assert_eq!(a.len(), 43);
    }
}
