//! The NATS client protocol: the parser of client operations and the encoders of what
//! the server sends back.

pub mod encode;
pub mod parser;

pub use parser::{Handler, Op, ParseError, Parser, PubArgs};
