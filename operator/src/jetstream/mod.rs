//! The operator's side of the JetStream API: specs turned into stream and consumer
//! configs ([`config`], pure), the requests that apply them ([`api`]) and the shared
//! connections they travel on ([`connect`]). The controllers in
//! [`crate::controller::jetstream`] drive these.

pub mod api;
pub mod config;
pub mod connect;
