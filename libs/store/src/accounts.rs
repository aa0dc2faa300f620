//! Accounts and their refresh tokens as stored in PostgreSQL.
//!
//! Refresh tokens are kept only as SHA-256 hashes. Tokens descended from one login form a
//! family, so that a token used twice (it leaked) revokes every token of that login.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// Creates the account `user_id` with a lower-cased `email`; `false` if the email is taken.
pub async fn insert_user(
    executor: impl PgExecutor<'_>,
    user_id: Uuid,
    email: &str,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING",
    )
    .bind(user_id)
    .bind(email)
    .bind(password_hash)
    .execute(executor)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

/// The id and password hash of the account with this (lower-cased) `email`, if any.
pub async fn user_by_email(
    executor: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(executor)
        .await
}

/// Stores a new refresh token of `user_id` in `family` by its hash.
pub async fn insert_refresh_token(
    executor: impl PgExecutor<'_>,
    family: Uuid,
    user_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(family)
    .bind(user_id)
    .bind(token_hash)
    .bind(expires_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    /// Primary key.
    pub id: Uuid,
    /// The login it descends from.
    pub family_id: Uuid,
    /// Whose it is.
    pub user_id: Uuid,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was traded for a new pair, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// When its family was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The refresh token whose hash is `token_hash`, locked until the transaction ends so that
/// one token cannot be traded twice at once.
pub async fn lock_refresh_token(
    executor: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> Result<Option<RefreshToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, family_id, user_id, expires_at, used_at, revoked_at
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(executor)
    .await
}

/// Marks refresh token `id` as traded.
pub async fn mark_refresh_token_used(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Revokes every token of `family` not revoked yet.
pub async fn revoke_family(executor: impl PgExecutor<'_>, family: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(executor)
    .await?;
    Ok(())
}

/// Revokes the family of the token whose hash is `token_hash`; nothing if it is unknown.
pub async fn revoke_family_of(
    executor: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
           AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .execute(executor)
    .await?;
    Ok(())
}
