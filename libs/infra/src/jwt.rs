//! Bearer tokens: HS256 JWTs signed with `JWT_SECRET`.
//!
//! The algorithm is pinned (a token claiming `none` or RS256 is rejected), `exp` is required
//! so a leaked token stops working on its own, and `iss`/`aud` are checked so a token minted
//! for another system with the same secret is refused. Time claims follow RFC 7519 §4.1: `nbf`
//! (when present) and `iat` may not lie in the future beyond [`LEEWAY_SECS`]. The subject must
//! pass [`pollstream_wire::input::check_subject`], the one rule every service applies to voter
//! ids.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pollstream_wire::input::{SubjectError, check_subject};
use serde::{Deserialize, Serialize};

use crate::env::{ConfigError, Vars};

/// Shortest secret accepted: HS256 with a short secret can be brute-forced offline.
pub const MIN_SECRET_LEN: usize = 32;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (RFC 7519 §4.1.4-6 allow "some
/// small leeway").
pub const LEEWAY_SECS: u64 = 5;

/// Who the bearer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A registered account (or a token minted by an operator).
    #[default]
    User,
    /// An anonymous participant: may vote, may not create polls.
    Guest,
}

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The voter or presenter; one ballot per subject and poll.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Issuer, checked against `JWT_ISSUER`.
    pub iss: String,
    /// Audience, checked against `JWT_AUDIENCE`.
    pub aud: String,
    /// Account or guest.
    #[serde(default)]
    pub role: Role,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Expired, badly signed, malformed or missing a required claim.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The subject breaks the shared subject rule (empty, too long, not printable).
    #[error("invalid token: {0}")]
    BadSubject(#[from] SubjectError),
    /// `iat` lies in the future: the token claims to be issued later than now.
    #[error("invalid token: issued in the future (`iat`)")]
    IssuedInFuture,
}

/// Secret, issuer and audience, from `JWT_SECRET`, `JWT_ISSUER` and `JWT_AUDIENCE`.
#[derive(Clone)]
pub struct JwtSettings {
    /// Signing secret, at least [`MIN_SECRET_LEN`] bytes.
    pub secret: String,
    /// `iss` written and required.
    pub issuer: String,
    /// `aud` written and required.
    pub audience: String,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &"<hidden>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtSettings {
    /// Reads the settings; the secret is required and must be long enough.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let secret = vars.required("JWT_SECRET")?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                value: "<hidden>".into(),
                reason: format!("must be at least {MIN_SECRET_LEN} bytes"),
            });
        }
        Ok(Self {
            secret,
            issuer: vars.or_default("JWT_ISSUER", "pollstream"),
            audience: vars.or_default("JWT_AUDIENCE", "pollstream"),
        })
    }

    /// Settings with the default issuer and audience; for tests and tools.
    pub fn with_secret(secret: &str) -> Self {
        Self {
            secret: secret.to_owned(),
            issuer: "pollstream".into(),
            audience: "pollstream".into(),
        }
    }

    /// The keys these settings describe.
    pub fn keys(&self) -> JwtKeys {
        JwtKeys::new(self)
    }
}

/// Signing and verification keys derived from one secret; cheap to clone (shared), since
/// handlers clone them with their state on every request.
#[derive(Clone)]
pub struct JwtKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// Keys for `settings`.
    pub fn new(settings: &JwtSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(settings.secret.as_bytes()),
            decoding: DecodingKey::from_secret(settings.secret.as_bytes()),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        }))
    }

    /// An account token for `subject`, valid for `ttl`.
    pub fn issue(&self, subject: &str, ttl: Duration) -> String {
        self.issue_as(subject, Role::User, ttl)
    }

    /// A token for `subject` with `role`, valid for `ttl`.
    pub fn issue_as(&self, subject: &str, role: Role, ttl: Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            iat: now,
            exp: now + ttl.as_secs(),
            iss: self.0.issuer.clone(),
            aud: self.0.audience.clone(),
            role,
        };
        self.sign(&claims)
    }

    fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.0.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The claims of a valid token: signature, `exp`, `nbf`, `iat`, `iss`, `aud` and the
    /// subject rule checked.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)?.claims;
        check_subject(&claims.sub)?;
        if claims.iat > jsonwebtoken::get_current_timestamp() + LEEWAY_SECS {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn keys() -> JwtKeys {
        JwtSettings::with_secret(SECRET).keys()
    }

    fn claims(sub: &str, offset_secs: i64) -> Claims {
        let now = jsonwebtoken::get_current_timestamp();
        Claims {
            sub: sub.into(),
            iat: now,
            exp: (now as i64 + offset_secs) as u64,
            iss: "pollstream".into(),
            aud: "pollstream".into(),
            role: Role::User,
        }
    }

    #[test]
    fn issued_token_verifies_with_its_subject_and_role() {
        let token = keys().issue_as("alice", Role::Guest, Duration::from_secs(60));
        let claims = keys().verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, Role::Guest);
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let other = JwtSettings::with_secret("another-secret-another-secret-xx").keys();
        let token = other.issue("bob", Duration::from_secs(60));
        assert!(keys().verify(&token).is_err());
    }

    #[test]
    fn expired_token_is_rejected() {
        let token = keys().sign(&claims("carol", -60));
        assert!(keys().verify(&token).is_err());
    }

    #[test]
    fn wrong_issuer_or_audience_is_rejected() {
        let mut wrong_iss = claims("dan", 60);
        wrong_iss.iss = "someone-else".into();
        assert!(keys().verify(&keys().sign(&wrong_iss)).is_err());
        let mut wrong_aud = claims("dan", 60);
        wrong_aud.aud = "another-api".into();
        assert!(keys().verify(&keys().sign(&wrong_aud)).is_err());
        assert!(keys().verify(&keys().sign(&claims("dan", 60))).is_ok());
    }

    #[test]
    fn token_without_exp_is_rejected() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "dave", "iss": "pollstream", "aud": "pollstream"}),
            &keys().0.encoding,
        )
        .unwrap();
        assert!(keys().verify(&token).is_err());
    }

    fn sign_json(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys().0.encoding).unwrap()
    }

    #[test]
    fn token_not_yet_valid_is_rejected() {
        let now = jsonwebtoken::get_current_timestamp();
        let token = |nbf: u64| {
            sign_json(serde_json::json!({
                "sub": "frank", "iat": now, "exp": now + 7200, "nbf": nbf,
                "iss": "pollstream", "aud": "pollstream",
            }))
        };
        assert!(matches!(
            keys().verify(&token(now + 3600)),
            Err(TokenError::Invalid(_))
        ));
        assert!(keys().verify(&token(now + LEEWAY_SECS)).is_ok());
        assert!(keys().verify(&token(now - 60)).is_ok());
    }

    #[test]
    fn token_issued_in_the_future_is_rejected() {
        let mut future = claims("grace", 7200);
        future.iat += 3600;
        assert!(matches!(
            keys().verify(&keys().sign(&future)),
            Err(TokenError::IssuedInFuture)
        ));
        let mut skewed = claims("grace", 7200);
        skewed.iat += LEEWAY_SECS;
        assert!(keys().verify(&keys().sign(&skewed)).is_ok());
    }

    #[test]
    fn subject_must_pass_the_shared_rule() {
        for (subject, expected) in [
            ("", SubjectError::Empty),
            ("a\u{0}b", SubjectError::NotPrintable),
            ("zero\u{200B}width", SubjectError::NotPrintable),
        ] {
            let token = keys().sign(&claims(subject, 60));
            assert!(
                matches!(keys().verify(&token), Err(TokenError::BadSubject(e)) if e == expected),
                "{subject:?}"
            );
        }
        let long = "x".repeat(pollstream_wire::input::MAX_SUBJECT_CHARS + 1);
        assert!(matches!(
            keys().verify(&keys().sign(&claims(&long, 60))),
            Err(TokenError::BadSubject(SubjectError::TooLong))
        ));
    }

    #[test]
    fn other_algorithm_is_rejected() {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims("eve", 60),
            &keys().0.encoding,
        )
        .unwrap();
        assert!(keys().verify(&token).is_err());
    }
}
