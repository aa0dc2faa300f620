//! Prometheus metrics: one recorder per process, rendered by each service's `/metrics`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder on first call and returns the handle that renders it.
///
/// Several services may run in one test process; they then share one recorder.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
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
