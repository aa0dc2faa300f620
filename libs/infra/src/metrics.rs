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
    /// Counter: consumers replaced after librdkafka reported them fatally failed, or after an
    /// offset commit went unanswered (a stalled group coordinator).
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
    let timer = HttpTimer::start(&request);
    let response = next.run(request).await;
    timer.finish(response.status());
    response
}

/// What [`track_http`] records, for a service that applies it inside a middleware of its own:
/// [`HttpTimer::start`] when the request comes in, [`HttpTimer::finish`] with the status.
#[derive(Debug)]
pub struct HttpTimer {
    method: metrics::SharedString,
    route: metrics::SharedString,
    started: std::time::Instant,
}

impl HttpTimer {
    /// Starts timing `request`, noting its method and route template.
    pub fn start<B>(request: &axum::http::Request<B>) -> Self {
        Self {
            method: method_label(request.method()),
            route: request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or(metrics::SharedString::const_str("unmatched"), |path| {
                    path.as_str().to_owned().into()
                }),
            started: std::time::Instant::now(),
        }
    }

    /// Records the request as answered with `status`.
    pub fn finish(self, status: axum::http::StatusCode) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let labels = vec![
            metrics::Label::new("method", self.method),
            metrics::Label::new("route", self.route),
            metrics::Label::new("status", status_label(status)),
        ];
        metrics::counter!(names::HTTP_REQUESTS_TOTAL, labels.clone()).increment(1);
        metrics::histogram!(names::HTTP_REQUEST_DURATION_SECONDS, labels).record(elapsed);
    }
}

/// The `method` label: a static string for the standard methods, so most requests allocate
/// nothing for it.
fn method_label(method: &axum::http::Method) -> metrics::SharedString {
    use axum::http::Method;
    let name = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => return method.as_str().to_owned().into(),
    };
    metrics::SharedString::const_str(name)
}

/// The `status` label, its three digits: static for the statuses the services answer most.
fn status_label(status: axum::http::StatusCode) -> metrics::SharedString {
    let digits = match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => return status.as_str().to_owned().into(),
    };
    metrics::SharedString::const_str(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_the_method_and_the_status_digits() {
        use axum::http::{Method, StatusCode};
        for method in [
            Method::GET,
            Method::POST,
            Method::from_bytes(b"PROPFIND").unwrap(),
        ] {
            assert_eq!(&*method_label(&method), method.as_str());
        }
        for code in [200, 202, 304, 409, 418, 503, 599] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(&*status_label(status), code.to_string());
        }
    }
}
