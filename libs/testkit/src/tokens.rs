//! Bearer tokens for tests: ones the services accept (signed with [`JWT_SECRET`], default
//! issuer and audience), and hand-made ones with any claims, to test what the services refuse.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pollstream_infra::jwt::{JwtKeys, JwtSettings};
use serde_json::{Value, json};

use crate::JWT_SECRET;

/// How long the tokens of [`token`] and [`claims`] are valid.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The keys the services under test use (secret [`JWT_SECRET`], default issuer and audience).
pub fn keys() -> JwtKeys {
    JwtSettings::with_secret(JWT_SECRET).keys()
}

/// A token for `subject`, valid for an hour, as the services issue one.
pub fn token(subject: &str) -> String {
    keys().issue(subject, TOKEN_TTL)
}

/// The claims of a valid token for `subject` (`sub`, `iat` now, `exp` an hour later, the
/// default `iss` and `aud`), to change before [`sign_claims`].
pub fn claims(subject: &str) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({
        "sub": subject, "iat": now, "exp": now + TOKEN_TTL.as_secs(),
        "iss": "pollstream", "aud": "pollstream",
    })
}

/// `claims` signed with HS256 and `secret` (usually [`JWT_SECRET`]), whatever they say.
pub fn sign_claims(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signing test claims")
}
