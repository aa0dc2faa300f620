//! `spawn_app()`: a real voting-api on a random port with its own database and topic.

use std::time::Duration;

use pollstream_infra::env::Vars;
use pollstream_infra::jwt::{JwtKeys, JwtSettings};
use pollstream_testkit::{JWT_SECRET, TestDatabase};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voting_api::Config;

pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub raw_votes_topic: String,
    pub client: reqwest::Client,
    keys: JwtKeys,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Overrides applied on top of the test defaults, as environment variable pairs.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    pollstream_testkit::init_logging();
    let db = TestDatabase::create().await;
    let raw_votes_topic = pollstream_testkit::unique_topic("raw-votes");
    let brokers = pollstream_testkit::kafka_brokers();
    let redis = pollstream_testkit::redis_url();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", &db.url),
        ("REDIS_URL", &redis),
        ("KAFKA_BROKERS", &brokers),
        ("JWT_SECRET", JWT_SECRET),
        ("RAW_VOTES_TOPIC", &raw_votes_topic),
        ("KAFKA_PRODUCE_TIMEOUT_MS", "3000"),
    ];
    pairs.retain(|(name, _)| !overrides.iter().any(|(o, _)| o == name));
    pairs.extend_from_slice(overrides);
    let config = Config::from_vars(&Vars::from_pairs(pairs)).expect("test configuration");
    if overrides.iter().all(|(name, _)| *name != "KAFKA_BROKERS") {
        pollstream_testkit::create_topics(&[(&raw_votes_topic, 3)]).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(voting_api::run(config, listener, async move {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        db,
        raw_votes_topic,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        keys: JwtSettings::with_secret(JWT_SECRET).keys(),
        _shutdown: shutdown,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    pub fn token(&self, subject: &str) -> String {
        self.keys.issue(subject, Duration::from_secs(600))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request failed");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request failed");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Creates a poll owned by `owner` and returns its JSON.
    pub async fn create_poll(
        &self,
        kind: &str,
        options: &[&str],
        max_choices: Option<i64>,
    ) -> Value {
        let mut body = json!({ "question": "Which one?", "options": options, "kind": kind });
        if let Some(max) = max_choices {
            body["maxChoices"] = max.into();
        }
        let (status, poll) = self
            .post("/api/v1/polls", Some(&self.token("owner")), &body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{poll}");
        poll
    }

    pub async fn vote(
        &self,
        code: &str,
        voter: &str,
        option_ids: &[&Value],
    ) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/votes/{code}"),
            Some(&self.token(voter)),
            &json!({ "optionIds": option_ids }),
        )
        .await
    }
}

pub fn option_id(poll: &Value, index: usize) -> &Value {
    &poll["options"][index]["id"]
}
