//! poll-aggregator binary: configuration from the environment, then [`poll_aggregator::run`].

use anyhow::Context;
use poll_aggregator::Config;
use pollstream_infra::env::Vars;

// glibc malloc was a quarter of voting-api's CPU profile under load; mimalloc is far cheaper for
// the many small short-lived allocations of a request or a broadcast.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
