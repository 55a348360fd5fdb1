//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use natrix_config::conf::{Loader, SystemLoader};
use natrix_config::options::{Options, Strictness, Warning};
use natrix_config::{ConfigError, Flags};

/// The real file system, with environment variables from a map (tests must not depend on,
/// or change, the process environment).
pub struct FsWithEnv {
    pub env: HashMap<String, String>,
}

impl FsWithEnv {
    pub fn new(vars: &[(&str, &str)]) -> Self {
        Self {
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl Loader for FsWithEnv {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        SystemLoader.read_file(path)
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}

pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

pub fn config(name: &str) -> PathBuf {
    config_dir().join(name)
}

/// Environment the sample configs expect.
pub fn sample_env() -> FsWithEnv {
    FsWithEnv::new(&[
        ("NATRIX_TEST_PORT", "4999"),
        ("NATRIX_TEST_ADVERTISE", "nats.example.com:4222"),
    ])
}

pub fn load(name: &str) -> Result<(Options, Vec<Warning>), ConfigError> {
    Options::load(
        Some(&config(name)),
        &Flags::default(),
        Strictness::Strict,
        &sample_env(),
    )
}

pub fn load_str(src: &str) -> Result<(Options, Vec<Warning>), ConfigError> {
    Options::from_str_with(src, "test.conf", Strictness::Strict, &FsWithEnv::new(&[]))
}

pub fn load_ok(src: &str) -> Options {
    match load_str(src) {
        Ok((o, _)) => o,
        Err(e) => panic!("config should load:\n{src}\nerror: {e}"),
    }
}

pub fn load_err(src: &str) -> String {
    match load_str(src) {
        Ok(_) => panic!("config should fail:\n{src}"),
        Err(e) => e.to_string(),
    }
}
