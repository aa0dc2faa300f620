//! The parts of the OpenAPI document that no single route owns: its title and version, the
//! bearer scheme, the entry for the document itself, and the answers the body rules give
//! before any handler runs.
//!
//! `413`, `408` and `415` come from `body_limit`, `body_deadline` and [`ApiJson`]'s rejection,
//! the same for every route that reads a body, so they are added here ([`BodyRefusals`]) to
//! each operation with a request body rather than written into each route's
//! `#[utoipa::path]`: a new route with a body documents them without a line of its own. In
//! the same way every `503` gets its `Retry-After` header ([`RetryAfter`]), which
//! `ApiError`'s one `IntoResponse` sets on every `503` it answers.
//!
//! [`ApiJson`]: crate::http::extract::ApiJson

use utoipa::Modify;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, OperationBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, Object, OpenApi, PathItem, Ref, RefOr, Response, ResponseBuilder,
    Type,
};

use crate::http::body_limit::MAX_BODY_BYTES;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Adds to `openapi`, as the routes left it, everything described in the module notes.
pub fn complete(openapi: &mut OpenApi) {
    openapi.info.title = "pollstream voting-api".into();
    openapi.info.version = env!("CARGO_PKG_VERSION").into();
    openapi.info.description = Some(
        "Live polls: accounts, polls, votes and results. Errors are `{error, message}`.".into(),
    );
    openapi
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    BodyRefusals.modify(openapi);
    RetryAfter.modify(openapi);
    openapi.paths.paths.insert(
        OPENAPI_PATH.into(),
        PathItem::new(
            HttpMethod::Get,
            OperationBuilder::new()
                .summary(Some("This document"))
                .tag("operations")
                .response("200", Response::new("OpenAPI 3.1 document")),
        ),
    );
}

/// `413 payload_too_large`, `408 request_timeout` and `415 unsupported_content_type`, added to
/// every operation that takes a request body.
pub struct BodyRefusals;

impl Modify for BodyRefusals {
    fn modify(&self, openapi: &mut OpenApi) {
        let refusals = [
            ("413", format!("body over {} KiB", MAX_BODY_BYTES / 1024)),
            (
                "408",
                "the body did not arrive within `HTTP_HEADER_READ_TIMEOUT_MS`".to_owned(),
            ),
            ("415", "not `application/json`".to_owned()),
        ];
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                if operation.request_body.is_none() {
                    continue;
                }
                for (status, description) in &refusals {
                    operation
                        .responses
                        .responses
                        .insert((*status).to_owned(), RefOr::T(error_response(description)));
                }
            }
        }
    }
}

/// The `Retry-After` header (whole seconds), added to every `503` error response: a dependency
/// (PostgreSQL, Redis, Kafka) unavailable, the instance overloaded, or vote locks being
/// restored.
pub struct RetryAfter;

impl Modify for RetryAfter {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                // An error body is `ApiError`'s; `/readyz`'s bare `503` sets no header.
                if let Some(RefOr::T(response)) = operation.responses.responses.get_mut("503")
                    && !response.content.is_empty()
                {
                    response.headers.insert(
                        "Retry-After".to_owned(),
                        HeaderBuilder::new()
                            .schema(Object::with_type(Type::Integer))
                            .description(Some("seconds to wait before retrying"))
                            .build(),
                    );
                }
            }
        }
    }
}

/// A response with `description` and the JSON error body.
fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// Every operation of `item`, whatever its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
