//! The JetStream API (`$JS.API.>`): JSON request and response types, nats-server's error
//! codes, and the handling of each request.

pub mod errors;
pub mod handlers;
pub mod json;
pub mod types;
