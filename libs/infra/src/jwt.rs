//! Bearer tokens: HS256 JWTs signed with `JWT_SECRET`.
//!
//! The algorithm is pinned (a token claiming `none` or RS256 is rejected) and `exp` is
//! required, so a leaked token stops working on its own.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Shortest secret accepted: HS256 with a short secret can be brute-forced offline.
pub const MIN_SECRET_LEN: usize = 32;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The voter or presenter; one ballot per subject and poll.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Expired, badly signed, malformed or missing a required claim.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The subject is empty or absurdly long.
    #[error("invalid token: the subject must be 1 to 200 characters")]
    BadSubject,
}

/// Signing and verification keys derived from one secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// Keys for `secret`, which the caller has checked is at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `subject`, valid for `ttl`.
    pub fn issue(&self, subject: &str, ttl: Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        if claims.sub.is_empty() || claims.sub.len() > 200 {
            return Err(TokenError::BadSubject);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_token_verifies_with_its_subject() {
        let keys = JwtKeys::new(SECRET);
        let token = keys.issue("alice", Duration::from_secs(60));
        assert_eq!(keys.verify(&token).unwrap().sub, "alice");
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let token =
            JwtKeys::new(b"another-secret-another-secret-xx").issue("bob", Duration::from_secs(60));
        assert!(JwtKeys::new(SECRET).verify(&token).is_err());
    }

    #[test]
    fn expired_token_is_rejected() {
        let keys = JwtKeys::new(SECRET);
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "carol".into(),
            iat: now - 120,
            exp: now - 60,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn token_without_exp_is_rejected() {
        let keys = JwtKeys::new(SECRET);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "dave"}),
            &keys.encoding,
        )
        .unwrap();
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn other_algorithm_is_rejected() {
        let keys = JwtKeys::new(SECRET);
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "eve".into(),
            iat: now,
            exp: now + 60,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_err());
    }
}
