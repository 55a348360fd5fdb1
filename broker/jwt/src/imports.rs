//! What an account takes from other accounts. Go: `imports.go`.

use crate::json::is_default;
use crate::types::ExportType;
use serde::{Deserialize, Serialize};

/// One import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Import {
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    /// The subject as the exporter names it.
    #[serde(skip_serializing_if = "is_default")]
    pub subject: String,
    /// The exporting account.
    #[serde(skip_serializing_if = "is_default")]
    pub account: String,
    /// Activation JWT, for exports that require one.
    #[serde(skip_serializing_if = "is_default")]
    pub token: String,
    /// Deprecated by `local_subject`, still honoured by nats-server.
    #[serde(skip_serializing_if = "is_default")]
    pub to: String,
    /// The subject in the importing account, may reference wildcards as `$1`.
    #[serde(skip_serializing_if = "is_default")]
    pub local_subject: String,
    #[serde(rename = "type", skip_serializing_if = "is_default")]
    pub import_type: ExportType,
    #[serde(skip_serializing_if = "is_default")]
    pub share: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub allow_trace: bool,
}

impl Import {
    pub fn is_service(&self) -> bool {
        self.import_type == ExportType::Service
    }

    pub fn is_stream(&self) -> bool {
        self.import_type == ExportType::Stream
    }
}
