//! Reading configuration from the environment, once, at start.
//!
//! Every error names the variable so that a misconfigured deployment fails with a message an
//! operator can act on instead of a panic deep inside a client library. Services read through
//! [`Vars`] so that tests can hand them a fixed set of variables instead of mutating the
//! process environment.

use std::collections::HashMap;
use std::str::FromStr;

/// A configuration variable that is missing or cannot be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is required and not set (or empty).
    #[error("environment variable {name} is required but not set")]
    Missing {
        /// The variable's name.
        name: &'static str,
    },
    /// The variable is set to something that is not a valid value.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// What it was set to.
        value: String,
        /// Why that value is rejected.
        reason: String,
    },
}

/// A source of configuration variables: the process environment or a fixed map.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// `None` reads the process environment.
    fixed: Option<HashMap<String, String>>,
}

impl Vars {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self { fixed: None }
    }

    /// Reads only the given pairs; used by tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            fixed: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        let value = match &self.fixed {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// The value of a required variable.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing { name })
    }

    /// The value of an optional variable, or `default` when it is unset or empty.
    pub fn or_default(&self, name: &'static str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// An optional variable parsed as `T`, or `default` when unset; a malformed value is an
    /// error.
    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            Some(value) => value
                .trim()
                .parse()
                .map_err(|err: T::Err| ConfigError::Invalid {
                    name,
                    value,
                    reason: err.to_string(),
                }),
            None => Ok(default),
        }
    }

    /// Like [`Vars::parsed_or`], and the value must also lie within `range`.
    pub fn ranged_or<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parsed_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                name,
                value: value.to_string(),
                reason: format!("must be between {} and {}", range.start(), range.end()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_variable_is_named() {
        let vars = Vars::from_pairs([("OTHER", "x"), ("JWT_SECRET", "  ")]);
        let err = vars.required("JWT_SECRET").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable JWT_SECRET is required but not set"
        );
    }

    #[test]
    fn malformed_number_is_named_with_its_value() {
        let vars = Vars::from_pairs([("VOTING_API_PORT", "70000")]);
        let err = vars.parsed_or("VOTING_API_PORT", 3001u16).unwrap_err();
        assert!(
            err.to_string().contains("VOTING_API_PORT=\"70000\""),
            "{err}"
        );
    }

    #[test]
    fn unset_variable_takes_its_default() {
        let vars = Vars::from_pairs([]);
        assert_eq!(vars.parsed_or("VOTING_API_PORT", 3001u16).unwrap(), 3001);
        assert_eq!(
            vars.or_default("KAFKA_BROKERS", "127.0.0.1:9092"),
            "127.0.0.1:9092"
        );
    }

    #[test]
    fn out_of_range_value_is_rejected() {
        let vars = Vars::from_pairs([("FLUSH_INTERVAL_MS", "0")]);
        let err = vars
            .ranged_or("FLUSH_INTERVAL_MS", 2000u64, 10..=60_000)
            .unwrap_err();
        assert!(err.to_string().contains("between 10 and 60000"), "{err}");
    }
}
