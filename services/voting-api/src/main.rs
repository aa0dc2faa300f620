//! voting-api binary: configuration from the environment, then [`voting_api::run`].

use anyhow::Context;
use pollstream_infra::env::Vars;
use voting_api::Config;

// glibc malloc was a quarter of voting-api's CPU profile under load; mimalloc is far cheaper for
// the many small short-lived allocations of a request or a broadcast.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = pollstream_infra::telemetry::init("voting-api");
    let config = Config::from_vars(&Vars::process()).context("reading configuration")?;
    let address = ("0.0.0.0", config.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding port {}", config.port))?;
    voting_api::run(config, listener, pollstream_infra::shutdown::signal())
        .await
        .context("running voting-api")
}
