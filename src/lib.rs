//! cdn-origin: an origin server that sits behind a CDN and fronts object storage.
//!
//! A request flows through a straight pipeline (see [`pipeline`]): parse the request into an
//! [`request::ObjectRequest`], resolve the object through the hot cache and the stores, decide
//! the preconditions, select the representation and byte ranges, attach the cache policy,
//! build the response, and record metrics.

#![warn(missing_docs, clippy::all)]

pub mod app;
pub mod cache;
pub mod conditional;
pub mod config;
pub mod content_type;
pub mod cors;
pub mod db;
pub mod encoding;
pub mod etag;
pub mod health;
pub mod message;
pub mod metrics;
pub mod object;
pub mod pipeline;
pub mod policy;
pub mod range;
pub mod report;
pub mod request;
pub mod response;
pub mod router;
pub mod sendfile;
pub mod server;
pub mod signing;
pub mod status;
pub mod store;
pub mod testing;
pub mod unused_body;
