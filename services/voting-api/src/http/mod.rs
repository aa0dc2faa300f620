//! The HTTP wing: what every route shares and none of them decides, kept apart from the
//! domain modules at the crate's top (accounts, polls, votes), which hold only their handlers
//! and routers.
//!
//! Here are the one error type and its status codes (`error`), the JSON bodies of every other
//! error answer (`json_errors`), the body size limit and the body deadline (`body_limit`,
//! `body_deadline`), the security headers (`security_headers`), the middleware that applies
//! those rules to every request (`every_request`), CORS (`cors`), what handlers take from a
//! request (`extract`), the OpenAPI document's shared parts and schema helpers (`openapi`,
//! `schema`), the web app's pages and files (`web`) and the operations routes (`health`). A
//! rule about transport changes here once; a resource's rules never land here.

pub mod error;
pub mod web;

pub(crate) mod body_deadline;
pub(crate) mod body_limit;
pub(crate) mod cors;
pub(crate) mod every_request;
pub(crate) mod extract;
pub(crate) mod health;
pub(crate) mod json_errors;
pub(crate) mod openapi;
pub(crate) mod schema;
pub(crate) mod security_headers;
