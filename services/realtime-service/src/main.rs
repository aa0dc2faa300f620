//! realtime-service binary: configuration from the environment, a Tokio runtime of
//! `REALTIME_WORKER_THREADS` workers, then [`realtime_service::run`].

use anyhow::Context;
use pollstream_infra::env::Vars;
use realtime_service::Config;

fn main() -> anyhow::Result<()> {
    let config = Config::from_vars(&Vars::process()).context("reading configuration")?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _telemetry = pollstream_infra::telemetry::init("realtime-service");
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("binding port {}", config.port))?;
    realtime_service::run(config, listener, pollstream_infra::shutdown::signal())
        .await
        .context("running realtime-service")
}
