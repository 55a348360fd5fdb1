//! placeholder during build
pub const SHARED_PREFIX: &str = "$share/";
