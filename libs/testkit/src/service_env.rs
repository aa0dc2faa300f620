//! The settings a service under test starts with: the test's database and the shared Redis,
//! brokers and token secret, plus whatever the test sets on top.

use pollstream_infra::env::Vars;

use crate::{JWT_SECRET, kafka_brokers, redis_url};

/// Environment variables for a service, by name; a name set twice keeps the later value.
#[derive(Debug, Clone)]
pub struct ServiceEnv {
    vars: Vec<(String, String)>,
}

impl ServiceEnv {
    /// `DATABASE_URL` set to `database_url`, `REDIS_URL` and `KAFKA_BROKERS` to the test
    /// infrastructure, `JWT_SECRET` to [`JWT_SECRET`].
    pub fn new(database_url: &str) -> Self {
        Self { vars: Vec::new() }
            .set("DATABASE_URL", database_url)
            .set("REDIS_URL", redis_url())
            .set("KAFKA_BROKERS", kafka_brokers())
            .set("JWT_SECRET", JWT_SECRET)
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.vars.iter_mut().find(|(key, _)| key == name) {
            Some(entry) => entry.1 = value,
            None => self.vars.push((name.to_owned(), value)),
        }
        self
    }

    /// Sets every `(name, value)` of `pairs`, in order.
    pub fn set_all(self, pairs: &[(&str, &str)]) -> Self {
        pairs
            .iter()
            .fold(self, |env, (name, value)| env.set(name, *value))
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every `(name, value)`, for a child process's environment.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The settings as a service's `Config::from_vars` reads them.
    pub fn vars(&self) -> Vars {
        Vars::from_pairs(self.pairs())
    }
}
