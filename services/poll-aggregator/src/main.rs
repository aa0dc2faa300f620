//! poll-aggregator binary: configuration from the environment, then [`poll_aggregator::run`].

use anyhow::Context;
use poll_aggregator::Config;
use pollstream_infra::env::Vars;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = pollstream_infra::telemetry::init("poll-aggregator");
    let config = Config::from_vars(&Vars::process()).context("reading configuration")?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("binding port {}", config.port))?;
    poll_aggregator::run(config, listener, pollstream_infra::shutdown::signal())
        .await
        .context("running poll-aggregator")
}
