//! `spawn_app()`: a real voting-api on a random port with its own database and topic.

use std::time::Duration;

use pollstream_testkit::server::{RunningServer, start_server};
use pollstream_testkit::service_env::ServiceEnv;
use pollstream_testkit::{TestDatabase, polls, tokens};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voting_api::{Config, RunError};

pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub raw_votes_topic: String,
    pub rate_limit_namespace: String,
    pub client: reqwest::Client,
    /// Stops the app when the test drops it.
    _server: RunningServer<RunError>,
}

/// Overrides applied on top of the test defaults, as environment variable pairs.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    pollstream_testkit::init_logging();
    let db = TestDatabase::create().await;
    let raw_votes_topic = pollstream_testkit::unique_topic("raw-votes");
    let namespace = pollstream_testkit::unique_topic("ratelimit");
    let env = ServiceEnv::new(&db.url)
        .set("RATE_LIMIT_NAMESPACE", &namespace)
        .set("RAW_VOTES_TOPIC", &raw_votes_topic)
        .set("KAFKA_PRODUCE_TIMEOUT_MS", "3000");
    if overrides.iter().all(|(name, _)| *name != "KAFKA_BROKERS") {
        pollstream_testkit::create_topics(&[(&raw_votes_topic, 3)]).await;
    }
    let server = serve(env, overrides).await;
    TestApp {
        address: server.url.clone(),
        db,
        raw_votes_topic,
        rate_limit_namespace: namespace,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        _server: server,
    }
}

/// A second instance of the same deployment: same database, topic and rate-limit counters.
pub async fn spawn_twin(app: &TestApp, overrides: &[(&str, &str)]) -> TestApp {
    let env = ServiceEnv::new(&app.db.url)
        .set("RAW_VOTES_TOPIC", &app.raw_votes_topic)
        .set("RATE_LIMIT_NAMESPACE", &app.rate_limit_namespace);
    let server = serve(env, overrides).await;
    TestApp {
        address: server.url.clone(),
        db: TestDatabase {
            url: app.db.url.clone(),
            pool: app.db.pool.clone(),
        },
        raw_votes_topic: app.raw_votes_topic.clone(),
        rate_limit_namespace: app.rate_limit_namespace.clone(),
        client: app.client.clone(),
        _server: server,
    }
}

/// Runs voting-api with `env` (each replaced by an override of the same name) on a free port.
async fn serve(env: ServiceEnv, overrides: &[(&str, &str)]) -> RunningServer<RunError> {
    let config = Config::from_vars(&env.set_all(overrides).vars()).expect("test configuration");
    start_server(|listener, shutdown| voting_api::run(config, listener, shutdown)).await
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    pub fn token(&self, subject: &str) -> String {
        tokens::token(subject)
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
        self.create_poll_with(&body).await
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

    /// Creates a poll owned by `owner` from a full request body.
    pub async fn create_poll_with(&self, body: &Value) -> Value {
        polls::create_poll(&self.client, &self.address, &self.token("owner"), body).await
    }

    /// Inserts a ballot as the aggregator would have, for tests of what reads ballots.
    pub async fn count_ballot(&self, poll: &Value, voter: &str, option_index: usize) {
        let poll_id: uuid::Uuid = poll["id"].as_str().unwrap().parse().unwrap();
        let option: uuid::Uuid = option_id(poll, option_index)
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        polls::insert_ballot(&self.db.pool, poll_id, voter, &[option]).await;
    }

    /// The Redis vote lock `voter` holds in `poll`, if any.
    pub async fn vote_lock(&self, poll: &Value, voter: &str) -> Option<String> {
        let mut redis = pollstream_testkit::redis_connection();
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
