//! Prometheus metrics: one recorder per process, rendered by each service's `/metrics`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Names of the metrics every service records through this crate; each service keeps the
/// names of its own metrics in its `metrics` module. Units follow Prometheus' conventions
/// (base units in the name's suffix: `_seconds`, `_total` for counters).
pub mod names {
    /// Counter: HTTP requests answered, by `method`, `route` (the route template, or
    /// `unmatched`) and `status`.
    pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
    /// Histogram, seconds: time to answer an HTTP request, same labels as
    /// [`HTTP_REQUESTS_TOTAL`].
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
    /// Counter: failed `accept` calls on an HTTP listener (each retried after a pause).
    pub const HTTP_ACCEPT_ERRORS_TOTAL: &str = "http_accept_errors_total";
    /// Counter: connections closed at once, by `reason` (`per_ip`: over the per-address cap).
    pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "http_connections_refused_total";
    /// Gauge: client connections open, WebSockets included.
    pub const HTTP_CONNECTIONS_OPEN: &str = "http_connections_open";
    /// Gauge: messages a consumer group has not read yet, by `topic` and `partition`.
    pub const KAFKA_CONSUMER_LAG: &str = "kafka_consumer_lag";
    /// Counter: consumers replaced after librdkafka reported them fatally failed.
    pub const KAFKA_CONSUMER_REBUILDS_TOTAL: &str = "kafka_consumer_rebuilds_total";
    /// Counter: producers rebuilt after a failed send.
    pub const KAFKA_PRODUCER_REBUILDS_TOTAL: &str = "kafka_producer_rebuilds_total";
    /// Histogram, seconds: time from a produce to its acknowledgement, by `topic`.
    pub const KAFKA_PRODUCE_DURATION_SECONDS: &str = "kafka_produce_duration_seconds";
    /// Counter: PostgreSQL statements that failed for a reason other than the data.
    pub const DATABASE_ERRORS_TOTAL: &str = "database_errors_total";
}

/// Installs the global recorder on first call and returns the handle that renders it.
///
/// Several services may run in one test process; they then share one recorder.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Explicit buckets turn latency histograms into real Prometheus histograms
            // (aggregatable across replicas) instead of summaries.
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("flush_batch_votes".into()),
                    &[
                        1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0,
                    ],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first, in which case metrics go
            // there and this handle renders an empty page; nothing to recover.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The `/metrics` handler: Prometheus text exposition format.
pub async fn render() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle().render(),
    )
}

/// Middleware recording `http_requests_total` and `http_request_duration_seconds` by method,
/// route template (not the raw path, so ids do not explode the label set) and status.
pub async fn track_http(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(names::HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION_SECONDS, &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
