//! Logging and tracing.
//!
//! Logs are structured JSON lines on stdout, level from `RUST_LOG`. When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over OTLP (HTTP/protobuf) with
//! the service's name, and the W3C trace context is propagated through Kafka headers (see
//! [`trace_context`]), so one vote is one trace across the three services.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the span exporter alive; dropping it (at the end of `main`) flushes pending spans.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing spans failed: {err}");
        }
    }
}

/// Installs the global subscriber for `service`: JSON logs (or `LOG_FORMAT=pretty`), plus OTLP
/// span export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and not empty.
pub fn init(service: &'static str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn,librdkafka=warn"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty());
    let provider = endpoint
        .as_deref()
        .and_then(|endpoint| tracer_provider(service, endpoint));
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    let fmt = if pretty {
        tracing_subscriber::fmt::layer().boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .fmt_fields(SpanFields)
            .event_format(JsonLines { service })
            .boxed()
    };
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    if result.is_ok() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing::info!(
            service,
            otlp = endpoint.as_deref().unwrap_or("off"),
            "Telemetry initialised"
        );
    }
    TelemetryGuard { provider }
}

/// One JSON object per event: time, level, service, message, the event's fields, the fields
/// of the spans it happened in (so `poll_id`, `vote_id` set on a span appear on every line
/// inside it), and the OpenTelemetry trace and span ids when tracing is on.
struct JsonLines {
    service: &'static str,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        use tracing_subscriber::fmt::FormattedFields;

        let mut line = serde_json::Map::new();
        let metadata = event.metadata();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("service".into(), self.service.into());
        line.insert("target".into(), metadata.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(serde_json::Value::Object(fields)) =
                        serde_json::from_str::<serde_json::Value>(fields.as_str())
                {
                    line.extend(fields);
                }
            }
            let context = tracing::Span::current().context();
            let span_context = opentelemetry::trace::TraceContextExt::span(&context)
                .span_context()
                .clone();
            if span_context.is_valid() {
                line.insert(
                    "trace_id".into(),
                    span_context.trace_id().to_string().into(),
                );
                line.insert("span_id".into(), span_context.span_id().to_string().into());
            }
        }
        event.record(&mut FieldVisitor(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Formats a span's fields as `tracing_subscriber`'s `JsonFields` does (one JSON object, read
/// back by [`JsonLines`]), but writes it directly instead of building a map of
/// `serde_json::Value`s first: every span of every request is formatted when it opens, logged
/// or not, and that map was most of a span's cost. Keys are written in the order they are
/// recorded; a key recorded twice reads back with its last value, as `JsonFields` keeps it.
struct SpanFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for SpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = SpanFieldVisitor::default();
        fields.record(&mut visitor);
        writer.write_char('{')?;
        writer.write_str(visitor.body()?)?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut visitor = SpanFieldVisitor::default();
        fields.record(&mut visitor);
        let body = visitor.body()?;
        let current = &mut current.fields;
        if current.is_empty() || current.as_str() == "{}" {
            current.clear();
            current.push('{');
        } else if body.is_empty() {
            return Ok(());
        } else {
            // `{...}` becomes `{...,<new fields>}`.
            current.pop();
            current.push(',');
        }
        current.push_str(body);
        current.push('}');
        Ok(())
    }
}

/// Writes `"name":value` pairs, comma-separated, as JSON.
#[derive(Default)]
struct SpanFieldVisitor {
    body: Vec<u8>,
    scratch: String,
}

impl SpanFieldVisitor {
    fn entry(&mut self, name: &str, value: &(impl serde::Serialize + ?Sized)) {
        if !self.body.is_empty() {
            self.body.push(b',');
        }
        // Writing to a `Vec` fails only for a map key that is not a string: never here.
        let _ = serde_json::to_writer(&mut self.body, name);
        self.body.push(b':');
        let _ = serde_json::to_writer(&mut self.body, value);
    }

    fn body(&self) -> Result<&str, std::fmt::Error> {
        std::str::from_utf8(&self.body).map_err(|_| std::fmt::Error)
    }
}

impl tracing::field::Visit for SpanFieldVisitor {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // `serde_json` writes a non-finite number as `null`, as `JsonFields` stores it.
        self.entry(field.name(), &value);
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.entry(field.name(), &value);
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.entry(field.name(), &value);
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.entry(field.name(), &value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.entry(field.name(), value);
    }
    fn record_bytes(&mut self, field: &tracing::field::Field, value: &[u8]) {
        self.entry(field.name(), value);
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let _ = write!(text, "{value:?}");
        // `JsonFields` strips a raw identifier's `r#` here (and only here).
        let name = field.name();
        self.entry(name.strip_prefix("r#").unwrap_or(name), text.as_str());
        self.scratch = text;
    }
}

/// Collects an event's fields into the JSON line.
struct FieldVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

fn tracer_provider(service: &'static str, endpoint: &str) -> Option<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(5))
        .build();
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("OTLP export disabled: {err}");
            return None;
        }
    };
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(500))
                .build(),
        )
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build(),
    )
}

/// Carrying the W3C trace context (`traceparent`) in Kafka message headers.
pub mod trace_context {
    use std::collections::HashMap;

    use opentelemetry::propagation::{Extractor, Injector};
    use rdkafka::message::{Header, Headers, OwnedHeaders};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    struct HeaderMap(HashMap<String, String>);

    impl Injector for HeaderMap {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), value);
        }
    }

    impl Extractor for HeaderMap {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(String::as_str)
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }

    /// `headers` plus the context of `span` (usually the current one).
    pub fn inject(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
        let mut carrier = HeaderMap(HashMap::new());
        let context = span.context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut carrier);
        });
        carrier.0.iter().fold(headers, |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        })
    }

    /// The context of `span` as message headers, or `None` when it has none to carry (spans
    /// are not exported): such a message then carries no header block at all, which spares
    /// the propagator, a map and a librdkafka header list per message.
    pub fn headers(span: &tracing::Span) -> Option<OwnedHeaders> {
        use opentelemetry::trace::TraceContextExt;
        if !span.context().span().span_context().is_valid() {
            return None;
        }
        Some(inject(span, OwnedHeaders::new()))
    }

    /// Makes the context carried by `headers` (if any) the parent of `span`.
    pub fn adopt<H: Headers>(span: &tracing::Span, headers: Option<&H>) {
        let Some(headers) = headers else { return };
        let carrier = HeaderMap(
            headers
                .iter()
                .filter_map(|h| {
                    Some((h.key.to_owned(), String::from_utf8(h.value?.to_vec()).ok()?))
                })
                .collect(),
        );
        let context = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&carrier)
        });
        let _ = span.set_parent(context);
    }

    /// Makes the context in a W3C `traceparent` the parent of `span`.
    pub fn adopt_traceparent(span: &tracing::Span, traceparent: &str) {
        let carrier = HeaderMap(HashMap::from([(
            "traceparent".to_owned(),
            traceparent.to_owned(),
        )]));
        let context = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&carrier)
        });
        let _ = span.set_parent(context);
    }

    /// The trace context carried by `headers`, as a W3C `traceparent`, if any.
    pub fn traceparent<H: Headers>(headers: Option<&H>) -> Option<String> {
        headers?
            .iter()
            .find(|h| h.key == "traceparent")
            .and_then(|h| String::from_utf8(h.value?.to_vec()).ok())
    }

    #[cfg(test)]
    mod tests {
        use opentelemetry::trace::TracerProvider as _;
        use rdkafka::message::Headers;
        use tracing_subscriber::layer::SubscriberExt;

        #[test]
        fn only_a_span_with_a_trace_context_gets_headers() {
            assert!(super::headers(&tracing::Span::none()).is_none());
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!("produce");
                let headers = super::headers(&span).expect("a traced span carries its context");
                let keys: Vec<&str> = headers.iter().map(|header| header.key).collect();
                assert!(keys.contains(&"traceparent"), "{keys:?}");
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::FormatFields;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Log output collected in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The JSON line of one event inside two spans with fields of every kind, its timestamp
    /// removed, with `fields` formatting the spans' fields.
    fn log_line<N>(fields: N) -> serde_json::Value
    where
        N: for<'a> FormatFields<'a> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(fields)
            .event_format(JsonLines { service: "test" })
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "request",
                method = ?axum::http::Method::POST,
                uri = %"/api/v1/votes/AB \"C\"\n",
                late = tracing::field::Empty,
                r#type = ?"raw",
            );
            let _outer = outer.enter();
            outer.record("late", 7u64);
            let inner = tracing::info_span!(
                "produce_vote",
                count = 3u64,
                delta = -2i64,
                ok = true,
                ratio = 0.5f64,
                nan = f64::NAN,
                text = "tab\\there é",
            );
            let _inner = inner.enter();
            tracing::info!(event_field = 1u64, "Inside both");
            let empty = tracing::info_span!("empty");
            let _empty = empty.enter();
            tracing::info!("Inside three");
        });
        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = output
            .lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                value.as_object_mut().unwrap().remove("timestamp");
                value
            })
            .collect();
        serde_json::Value::Array(lines)
    }

    #[test]
    fn span_fields_read_back_as_json_fields_writes_them() {
        let ours = log_line(SpanFields);
        let reference = log_line(tracing_subscriber::fmt::format::JsonFields::new());
        assert_eq!(ours, reference);
        assert_eq!(ours[0]["late"], 7, "{ours}");
        assert_eq!(ours[0]["type"], "\"raw\"", "{ours}");
        assert_eq!(ours[0]["nan"], serde_json::Value::Null, "{ours}");
    }
}
