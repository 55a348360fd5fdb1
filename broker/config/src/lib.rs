//! natrix-config: everything that decides how a natrix-server is configured.
//!
//! - [`conf`]: the nats-server config language (lexer, parser, includes, variables, value
//!   tree with positions, renderer).
//! - [`options`]: the typed [`Options`] with nats-server's defaults, read from a value tree.
//! - [`flags`]: the nats-server command line and how it overrides the config file.
//! - [`reload`]: what changed between two [`Options`] and whether a running server may apply
//!   it.
//! - [`validate`]: the checks nats-server runs when it creates a server from options.
//!
//! Names (options, flags, error texts) are nats-server's, so existing configs, scripts and
//! habits carry over unchanged.

pub mod conf;
pub mod duration;
pub mod flags;
pub mod options;
pub mod reload;
pub mod validate;

pub use flags::{Configured, FlagError, Flags, SignalCommand, configure};
pub use options::{ConfigError, Diagnostic, Options, Strictness, Warning};
pub use reload::{ReloadPlan, diff};
