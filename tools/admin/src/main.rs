//! `pollstream-admin`: the one-off operator commands the scripts, the compose stack and the
//! Kubernetes migration Job run.
//!
//! ```text
//! pollstream-admin migrate                 apply pending migrations (DATABASE_URL)
//! pollstream-admin create-topics           create raw-votes, its .dlq and poll-updates (KAFKA_BROKERS)
//! pollstream-admin token SUBJECT [TTL_S]   print a bearer token for SUBJECT (JWT_SECRET)
//! ```

use std::time::Duration;

use anyhow::{Context, bail};
use pollstream_infra::env::Vars;
use pollstream_infra::jwt::JwtSettings;
use pollstream_infra::kafka::KafkaSettings;
use pollstream_wire::{DEAD_LETTER_SUFFIX, POLL_UPDATES_TOPIC, RAW_VOTES_TOPIC};

const USAGE: &str = "usage:
  pollstream-admin migrate                 apply pending migrations (reads DATABASE_URL)
  pollstream-admin create-topics           create the Kafka topics (reads KAFKA_BROKERS,
                                           RAW_VOTES_PARTITIONS=3, POLL_UPDATES_PARTITIONS=3)
  pollstream-admin token SUBJECT [TTL_S]   print a bearer token for SUBJECT (reads JWT_SECRET,
                                           JWT_ISSUER, JWT_AUDIENCE)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vars = Vars::process();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["migrate"] => migrate(&vars).await,
        ["create-topics"] => create_topics(&vars).await,
        ["token", subject] => token(&vars, subject, None),
        ["token", subject, ttl] => token(&vars, subject, Some(ttl)),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

async fn migrate(vars: &Vars) -> anyhow::Result<()> {
    let url = vars.required("DATABASE_URL")?;
    let pool = pollstream_infra::postgres::connect_lazy(&url, 1).context("parsing DATABASE_URL")?;
    pollstream_infra::postgres::migrate(&pool)
        .await
        .context("applying migrations")?;
    println!("migrations applied");
    Ok(())
}

async fn create_topics(vars: &Vars) -> anyhow::Result<()> {
    let kafka = KafkaSettings::from_vars(vars)?;
    let raw_votes = vars.or_default("RAW_VOTES_TOPIC", RAW_VOTES_TOPIC);
    let poll_updates = vars.or_default("POLL_UPDATES_TOPIC", POLL_UPDATES_TOPIC);
    let dead_letters = format!("{raw_votes}{DEAD_LETTER_SUFFIX}");
    let raw_partitions = vars.ranged_or("RAW_VOTES_PARTITIONS", 3, 1..=1024)?;
    let update_partitions = vars.ranged_or("POLL_UPDATES_PARTITIONS", 3, 1..=1024)?;
    let topics = [
        (raw_votes.as_str(), raw_partitions),
        (dead_letters.as_str(), 1),
        (poll_updates.as_str(), update_partitions),
    ];
    kafka
        .ensure_topics(&topics)
        .await
        .with_context(|| format!("creating topics on {}", kafka.brokers))?;
    for (name, partitions) in topics {
        println!("topic {name} ready ({partitions} partitions requested)");
    }
    Ok(())
}

fn token(vars: &Vars, subject: &str, ttl: Option<&str>) -> anyhow::Result<()> {
    let ttl: u64 = match ttl {
        Some(ttl) => ttl
            .parse()
            .with_context(|| format!("TTL_S {ttl:?} is not a number of seconds"))?,
        None => 24 * 60 * 60,
    };
    pollstream_wire::input::check_subject(subject)
        .with_context(|| format!("SUBJECT {subject:?} would be refused by every service"))?;
    let jwt = JwtSettings::from_vars(vars)?;
    println!("{}", jwt.keys().issue(subject, Duration::from_secs(ttl)));
    Ok(())
}
