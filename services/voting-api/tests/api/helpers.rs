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
    pub rate_limit_namespace: String,
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
    let namespace = pollstream_testkit::unique_topic("ratelimit");
    let pairs: Vec<(&str, &str)> = vec![
        ("RATE_LIMIT_NAMESPACE", &namespace),
        ("DATABASE_URL", &db.url),
        ("REDIS_URL", &redis),
        ("KAFKA_BROKERS", &brokers),
        ("JWT_SECRET", JWT_SECRET),
        ("RAW_VOTES_TOPIC", &raw_votes_topic),
        ("KAFKA_PRODUCE_TIMEOUT_MS", "3000"),
    ];
    if overrides.iter().all(|(name, _)| *name != "KAFKA_BROKERS") {
        pollstream_testkit::create_topics(&[(&raw_votes_topic, 3)]).await;
    }
    let (address, shutdown) = serve(pairs, overrides).await;
    TestApp {
        address,
        db,
        raw_votes_topic,
        rate_limit_namespace: namespace,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        keys: JwtSettings::with_secret(JWT_SECRET).keys(),
        _shutdown: shutdown,
    }
}

/// A second instance of the same deployment: same database, topic and rate-limit counters.
pub async fn spawn_twin(app: &TestApp, overrides: &[(&str, &str)]) -> TestApp {
    let brokers = pollstream_testkit::kafka_brokers();
    let redis = pollstream_testkit::redis_url();
    let pairs: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", &app.db.url),
        ("REDIS_URL", &redis),
        ("KAFKA_BROKERS", &brokers),
        ("JWT_SECRET", JWT_SECRET),
        ("RAW_VOTES_TOPIC", &app.raw_votes_topic),
        ("RATE_LIMIT_NAMESPACE", &app.rate_limit_namespace),
    ];
    let (address, shutdown) = serve(pairs, overrides).await;
    TestApp {
        address,
        db: TestDatabase {
            url: app.db.url.clone(),
            pool: app.db.pool.clone(),
        },
        raw_votes_topic: app.raw_votes_topic.clone(),
        rate_limit_namespace: app.rate_limit_namespace.clone(),
        client: app.client.clone(),
        keys: app.keys.clone(),
        _shutdown: shutdown,
    }
}

/// Runs voting-api with `pairs` (each replaced by an override of the same name) on a free
/// port; returns its address and the sender whose drop stops it.
async fn serve(
    mut pairs: Vec<(&str, &str)>,
    overrides: &[(&str, &str)],
) -> (String, tokio::sync::oneshot::Sender<()>) {
    pairs.retain(|(name, _)| !overrides.iter().any(|(o, _)| o == name));
    pairs.extend_from_slice(overrides);
    let config = Config::from_vars(&Vars::from_pairs(pairs)).expect("test configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(voting_api::run(config, listener, async move {
        let _ = stopped.await;
    }));
    (address, shutdown)
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
        self.get_as(path, None).await
    }

    pub async fn get_as(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request failed");
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

impl TestApp {
    /// Creates a poll owned by `owner` from a full request body.
    pub async fn create_poll_with(&self, body: &Value) -> Value {
        let (status, poll) = self
            .post("/api/v1/polls", Some(&self.token("owner")), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{poll}");
        poll
    }

    /// Inserts a ballot as the aggregator would have, for tests of what reads ballots.
    pub async fn count_ballot(&self, poll: &Value, voter: &str, option_index: usize) {
        let poll_id: uuid::Uuid = poll["id"].as_str().unwrap().parse().unwrap();
        let option: uuid::Uuid = option_id(poll, option_index)
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        sqlx::query(
            "INSERT INTO ballots (poll_id, voter_id, vote_id, option_ids, cast_at)
             VALUES ($1, $2, $3, $4, now())",
        )
        .bind(poll_id)
        .bind(voter)
        .bind(uuid::Uuid::now_v7())
        .bind(vec![option])
        .execute(&self.db.pool)
        .await
        .unwrap();
    }

    /// The Redis vote lock `voter` holds in `poll`, if any.
    pub async fn vote_lock(&self, poll: &Value, voter: &str) -> Option<String> {
        let mut redis = pollstream_infra::redis::connect_lazy(
            &pollstream_testkit::redis_url(),
            Duration::from_secs(2),
        )
        .unwrap();
        redis::cmd("GET")
            .arg(format!("vote:{}:{voter}", poll["id"].as_str().unwrap()))
            .query_async(&mut redis)
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> StatusCode {
        self.client
            .delete(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("request failed")
            .status()
    }
}

pub fn option_id(poll: &Value, index: usize) -> &Value {
    &poll["options"][index]["id"]
}
