//! realtime-service binary: configuration from the environment, then [`realtime_service::run`].

use anyhow::Context;
use pollstream_infra::env::Vars;
use realtime_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = pollstream_infra::telemetry::init("realtime-service");
    let config = Config::from_vars(&Vars::process()).context("reading configuration")?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("binding port {}", config.port))?;
    realtime_service::run(config, listener, pollstream_infra::shutdown::signal())
        .await
        .context("running realtime-service")
}
