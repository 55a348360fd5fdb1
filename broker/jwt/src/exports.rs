//! What an account offers other accounts: stream and service exports. Go: `exports.go`.

use crate::ActivationClaims;
use crate::json::is_default;
use crate::revocation::RevocationList;
use crate::types::{ExportType, Info};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `response_type` values of a service export (Go keeps it a free string, and so does the
/// JSON; validation is the server's).
pub struct ResponseType;

impl ResponseType {
    pub const SINGLETON: &'static str = "Singleton";
    pub const STREAM: &'static str = "Stream";
    pub const CHUNKED: &'static str = "Chunked";
}

/// Latency sampling percentage, 1..=100; 0 means "sample when the request carries tracing
/// headers" and is written as `"headers"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SamplingRate(pub i64);

impl SamplingRate {
    pub const HEADERS: SamplingRate = SamplingRate(0);
}

impl Serialize for SamplingRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            0 => s.serialize_str("headers"),
            1..=100 => s.serialize_i64(self.0),
            _ => Err(serde::ser::Error::custom("unknown sampling rate")),
        }
    }
}

impl<'de> Deserialize<'de> for SamplingRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(i) => Ok(SamplingRate(i)),
            Raw::Str(s) if s.eq_ignore_ascii_case("headers") => Ok(SamplingRate::HEADERS),
            Raw::Str(s) => Err(serde::de::Error::custom(format!(
                "invalid sampling rate {s:?}"
            ))),
        }
    }
}

/// Where a service export reports request latency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceLatency {
    pub sampling: SamplingRate,
    pub results: String,
}

/// One export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Export {
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(skip_serializing_if = "is_default")]
    pub subject: String,
    #[serde(rename = "type", skip_serializing_if = "is_default")]
    pub export_type: ExportType,
    /// Importers need an activation token.
    #[serde(skip_serializing_if = "is_default")]
    pub token_req: bool,
    /// Revoked activations: importing account → time.
    #[serde(skip_serializing_if = "is_default")]
    pub revocations: RevocationList,
    #[serde(skip_serializing_if = "is_default")]
    pub response_type: String,
    /// Go `time.Duration`: nanoseconds.
    #[serde(skip_serializing_if = "is_default")]
    pub response_threshold: i64,
    #[serde(rename = "service_latency", skip_serializing_if = "Option::is_none")]
    pub latency: Option<ServiceLatency>,
    /// 1-based token of the subject that must equal the importing account's key.
    #[serde(skip_serializing_if = "is_default")]
    pub account_token_position: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub advertise: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub allow_trace: bool,
    #[serde(flatten)]
    pub info: Info,
}

impl Export {
    pub fn is_service(&self) -> bool {
        self.export_type == ExportType::Service
    }

    pub fn is_stream(&self) -> bool {
        self.export_type == ExportType::Stream
    }

    /// Whether an activation for `public_key` issued at `issued_at` is revoked.
    pub fn is_revoked(&self, public_key: &str, issued_at: i64) -> bool {
        self.revocations.is_revoked(public_key, issued_at)
    }

    /// Go's `IsClaimRevoked`: claims without an issue time or subject count as revoked.
    pub fn is_claim_revoked(&self, activation: &ActivationClaims) -> bool {
        if activation.data.issued_at == 0 || activation.data.subject.is_empty() {
            return true;
        }
        self.is_revoked(&activation.data.subject, activation.data.issued_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn sampling_headers_and_number() {
        let l: Result<ServiceLatency, _> =
            json::from_slice(br#"{"sampling":"Headers","results":"r"}"#);
        assert_eq!(l.ok().map(|l| l.sampling), Some(SamplingRate::HEADERS));
        let l: Result<ServiceLatency, _> = json::from_slice(br#"{"sampling":50,"results":"r"}"#);
        assert_eq!(l.ok().map(|l| l.sampling), Some(SamplingRate(50)));
        let l: Result<ServiceLatency, _> =
            json::from_slice(br#"{"sampling":"often","results":"r"}"#);
        assert!(l.is_err());
        let out = json::to_vec(&ServiceLatency::default()).map(String::from_utf8);
        assert_eq!(
            out.ok().and_then(Result::ok).as_deref(),
            Some(r#"{"sampling":"headers","results":""}"#)
        );
        assert!(json::to_vec(&SamplingRate(101)).is_err());
    }
}
