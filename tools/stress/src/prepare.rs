//! The set-up both tools share before the first vote: an HTTP client, the polls with the counts
//! they start from ([`Prepared::new`]), then on request Socket.IO screens joined to every poll
//! ([`Prepared::connect_screens`]) and the vote load's shared state with its outcome channel
//! ([`Prepared::voting`]). `pollstream-stress` and `pollstream-chaos` differ in where the keys
//! and the services come from, not in these steps.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pollstream_infra::jwt::JwtKeys;
use tokio::sync::mpsc;

use crate::load::{Outcome, Tally, Voting};
use crate::screens::{ScreenSettings, Screens};
use crate::setup::{self, TargetPoll};

/// Where a run's polls come from.
#[derive(Debug, Clone)]
pub enum PollSource {
    /// New single-choice polls: `count` of them (at least one), `options` answers each.
    Create {
        /// Polls to create.
        count: usize,
        /// Options of each.
        options: usize,
    },
    /// Existing polls, by join code.
    Existing(Vec<String>),
}

/// What a run has once set up: the client it talks through, the keys its tokens are signed
/// with, and the polls it votes in with their starting counts.
pub struct Prepared {
    /// One client for every request, its pool shared by every vote.
    pub http: reqwest::Client,
    /// Signs the presenter's and the voters' tokens.
    pub keys: JwtKeys,
    /// The polls, with the counts before the run.
    pub polls: Vec<TargetPoll>,
}

impl Prepared {
    /// Builds the client (answers later than `request_timeout` count as unknown), creates or
    /// looks up the polls at voting-api `api`, and reads the counts they start from.
    pub async fn new(
        api: &str,
        keys: JwtKeys,
        source: &PollSource,
        request_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = http_client(request_timeout)?;
        let mut polls = match source {
            PollSource::Create { count, options } => {
                setup::create_polls(&http, api, &keys, (*count).max(1), *options).await?
            }
            PollSource::Existing(codes) => setup::existing_polls(&http, api, codes).await?,
        };
        setup::read_baselines(&http, api, &mut polls).await?;
        Ok(Self { http, keys, polls })
    }

    /// The polls' join codes, in order.
    pub fn codes(&self) -> Vec<String> {
        self.polls.iter().map(|p| p.code.clone()).collect()
    }

    /// The ballots each poll had before the run, in order.
    pub fn baselines(&self) -> Vec<i64> {
        self.polls.iter().map(|p| p.baseline_total).collect()
    }

    /// Connects `count` screens to the realtime-service at `server`, `concurrency` at a time,
    /// each joined to every poll; `reconnect` makes a screen come back after a broken
    /// connection, `source_addrs` spreads them over local addresses.
    pub async fn connect_screens(
        &self,
        server: SocketAddr,
        source_addrs: Vec<IpAddr>,
        reconnect: bool,
        count: usize,
        concurrency: usize,
    ) -> anyhow::Result<Screens> {
        let settings = ScreenSettings {
            server,
            source_addrs,
            polls: self.polls.iter().map(|p| p.id).collect(),
            reconnect,
        };
        Screens::connect(settings, count, concurrency).await
    }

    /// The load's shared state, voting round-robin over the voting-api replicas at `apis` as
    /// voters `{voter_prefix}-N`, with `duplicates` of the attempts repeating a ballot; and
    /// where its outcomes arrive, with an empty tally to fold them into.
    pub fn voting(
        &self,
        apis: &[String],
        voter_prefix: String,
        duplicates: f64,
    ) -> (Arc<Voting>, mpsc::UnboundedReceiver<Outcome>, Tally) {
        let option_counts: Vec<usize> = self.polls.iter().map(|p| p.options.len()).collect();
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let voting = Arc::new(Voting::new(
            self.http.clone(),
            self.keys.clone(),
            apis,
            voter_prefix,
            &self.polls,
            duplicates,
            outcomes_tx,
        ));
        (voting, outcomes_rx, Tally::new(&option_counts))
    }
}

/// A voter prefix no earlier run used: `{tool}-` and eight random hex digits.
pub fn fresh_voter_prefix(tool: &str) -> String {
    format!("{tool}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A client tuned for load: every connection kept for reuse, no Nagle delay, and a timeout
/// after which a vote's outcome is unknown.
fn http_client(request_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .timeout(request_timeout)
        .build()
        .context("building the HTTP client")
}
