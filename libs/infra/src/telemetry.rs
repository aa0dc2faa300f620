//! Logging: structured JSON lines on stdout, level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber for `service`. JSON by default; `LOG_FORMAT=pretty` gives
/// human-readable lines for a terminal.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if pretty {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
    if result.is_ok() {
        tracing::info!(service, "Logging initialised");
    }
}
