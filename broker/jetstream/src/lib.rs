//! JetStream for natrix-server: persistent streams and consumers, and the KV and object
//! store conventions that clients build on them.
//!
//! This crate never touches a connection. It reaches the server core through [`bus`]: an
//! internal client bound to an account that subscribes, receives and publishes, exactly
//! what nats-server's own JetStream does through its internal clients. `main.rs` wires
//! the core's internal client into it, so the core never imports JetStream either.
//!
//! | module | holds |
//! | --- | --- |
//! | [`store`] | the message store trait, the memory store and the redb file store |
//! | [`subject`] | subject tokens and wildcard matching for filters |
//! | [`api`] | the `$JS.API.>` JSON types, error codes and request handling |

pub mod api;
pub mod store;
pub mod subject;
