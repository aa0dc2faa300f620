//! Join codes: the short code an audience types to find a poll.
//!
//! voting-api makes them and takes them in paths; realtime-service takes them in `join` and
//! `leave`. Both read a typed code through [`JoinCode::parse`], so a code one of them finds the
//! other finds too, and a code no poll can have never costs a query.

use std::fmt;
use std::ops::RangeInclusive;

use rand::Rng;

/// Characters of a new code: letters and digits without `I`, `O`, `0` and `1`, which readers
/// confuse.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Length of a new code: 32^6, about a billion codes.
pub const LEN: usize = 6;

/// Lengths a stored code may have; a typed code of any other length names no poll.
const LENGTHS: RangeInclusive<usize> = 4..=16;

/// A join code as stored: 4 to 16 upper-case ASCII letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinCode(String);

/// A typed code that no poll can have, normalised as [`JoinCode::parse`] read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no poll with code {0:?}")]
pub struct NoSuchCode(pub String);

impl JoinCode {
    /// Reads a code as people type it: surrounding whitespace is dropped and case ignored.
    /// Fails when the result is not 4 to 16 ASCII letters and digits.
    pub fn parse(typed: &str) -> Result<Self, NoSuchCode> {
        let code = typed.trim().to_ascii_uppercase();
        if LENGTHS.contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(JoinCode(code))
        } else {
            Err(NoSuchCode(code))
        }
    }

    /// A fresh random code of [`LEN`] characters from [`ALPHABET`].
    pub fn random() -> Self {
        let mut rng = rand::rng();
        JoinCode(
            (0..LEN)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect(),
        )
    }

    /// The code as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<JoinCode> for String {
    fn from(code: JoinCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        for _ in 0..100 {
            let code = JoinCode::random();
            assert_eq!(code.as_str().len(), LEN);
            assert!(
                code.as_str().bytes().all(|b| ALPHABET.contains(&b)),
                "{code}"
            );
            assert_eq!(JoinCode::parse(code.as_str()), Ok(code));
        }
    }

    #[test]
    fn typed_codes_are_trimmed_and_upper_cased() {
        assert_eq!(JoinCode::parse(" abc42x ").unwrap().as_str(), "ABC42X");
        assert_eq!(JoinCode::parse("ABCD").unwrap().as_str(), "ABCD");
        assert_eq!(JoinCode::parse(&"A".repeat(16)).unwrap().as_str().len(), 16);
    }

    #[test]
    fn codes_no_poll_can_have_are_refused_normalised() {
        assert_eq!(JoinCode::parse(" abc"), Err(NoSuchCode("ABC".into())));
        assert_eq!(JoinCode::parse(""), Err(NoSuchCode(String::new())));
        assert!(JoinCode::parse(&"A".repeat(17)).is_err());
        assert!(JoinCode::parse("AB-CD").is_err());
        assert!(JoinCode::parse("ÄBCDE").is_err());
        assert_eq!(
            NoSuchCode("AB".into()).to_string(),
            "no poll with code \"AB\""
        );
    }
}
