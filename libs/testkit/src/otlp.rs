//! An OTLP/HTTP trace endpoint of the test's own: services export their spans to it instead of
//! a collector, and the test reads what they sent.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;

/// Accepts every `POST /v1/traces` with an empty `ExportTraceServiceResponse` and keeps the
/// request bodies (protobuf `ExportTraceServiceRequest`s), undecoded.
pub struct OtlpReceiver {
    /// Its base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    requests: Arc<Mutex<Vec<Bytes>>>,
}

impl OtlpReceiver {
    /// Serves one on `127.0.0.1` and a free port until the test ends.
    pub async fn start() -> Self {
        let requests: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let sink = requests.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                sink.lock().unwrap().push(body);
                async {
                    // An empty protobuf message is a valid ExportTraceServiceResponse.
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { endpoint, requests }
    }

    /// The body of every export request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Bytes> {
        self.requests.lock().unwrap().clone()
    }
}
