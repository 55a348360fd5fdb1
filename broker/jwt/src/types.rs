//! The small value types shared by several claim kinds: permissions, limits, time ranges,
//! export types and descriptive info. Go: `types.go`, `user_claims.go`, `account_claims.go`.

use crate::json::is_default;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The limit value meaning "unlimited".
pub const NO_LIMIT: i64 = -1;

/// A description and a link, carried by accounts and exports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Info {
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    #[serde(skip_serializing_if = "is_default")]
    pub info_url: String,
}

/// Whether an export, import or activation is for a stream or a service. Go marshals it as
/// `"stream"` or `"service"`, and `Unknown` (0) is omitted by `omitempty`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ExportType {
    #[default]
    Unknown,
    Stream,
    Service,
}

impl ExportType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportType::Unknown => "unknown",
            ExportType::Stream => "stream",
            ExportType::Service => "service",
        }
    }
}

impl std::fmt::Display for ExportType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ExportType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExportType::Unknown => Err(serde::ser::Error::custom("unknown export type")),
            other => s.serialize_str(other.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for ExportType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "stream" => Ok(ExportType::Stream),
            "service" => Ok(ExportType::Service),
            _ => Err(serde::de::Error::custom(format!(
                "unknown export type {s:?}"
            ))),
        }
    }
}

/// Allow and deny lists of subjects (a `sub` entry may carry a queue: `"subject queue"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Permission {
    #[serde(skip_serializing_if = "is_default")]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub deny: Vec<String>,
}

impl Permission {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Permission to publish to reply subjects: at most `max` messages within `ttl` nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResponsePermission {
    pub max: i64,
    /// Go `time.Duration`: nanoseconds.
    pub ttl: i64,
}

/// Publish and subscribe permissions. `pub` and `sub` are always written (Go's `omitempty`
/// does not omit structs), `resp` only when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Permissions {
    #[serde(rename = "pub")]
    pub publish: Permission,
    #[serde(rename = "sub")]
    pub subscribe: Permission,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
}

/// A daily connect window, `HH:MM:SS` strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeRange {
    #[serde(skip_serializing_if = "is_default")]
    pub start: String,
    #[serde(skip_serializing_if = "is_default")]
    pub end: String,
}

/// Where and when a user may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserLimits {
    /// CIDR list. Go also accepts a comma separated string here (lower-cased, trimmed,
    /// de-duplicated), so old tokens decode.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "cidr_list")]
    pub src: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub times: Vec<TimeRange>,
    #[serde(rename = "times_location", skip_serializing_if = "is_default")]
    pub locale: String,
}

impl UserLimits {
    pub fn is_unlimited(&self) -> bool {
        self.src.is_empty() && self.times.is_empty()
    }
}

fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        Str(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(v) => v,
        ListOrString::Str(s) => {
            let mut out: Vec<String> = Vec::new();
            for item in s.to_lowercase().split(',') {
                let item = item.trim().to_string();
                if !item.is_empty() && !out.contains(&item) {
                    out.push(item);
                }
            }
            out
        }
    })
}

/// Subscription, data and payload limits; `-1` is unlimited, 0 is omitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsLimits {
    #[serde(skip_serializing_if = "is_default")]
    pub subs: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub data: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub payload: i64,
}

impl NatsLimits {
    /// All three at [`NO_LIMIT`], as Go's constructors set them.
    pub const UNLIMITED: NatsLimits = NatsLimits {
        subs: NO_LIMIT,
        data: NO_LIMIT,
        payload: NO_LIMIT,
    };

    pub fn is_unlimited(&self) -> bool {
        *self == Self::UNLIMITED
    }
}

/// A user's connection limits: Go embeds both structs, so their fields sit side by side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    #[serde(flatten)]
    pub user_limits: UserLimits,
    #[serde(flatten)]
    pub nats_limits: NatsLimits,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.user_limits.is_unlimited() && self.nats_limits.is_unlimited()
    }
}

/// What a user may do: the body of a user JWT and the template of a scoped signing key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserPermissionLimits {
    #[serde(flatten)]
    pub permissions: Permissions,
    #[serde(flatten)]
    pub limits: Limits,
    #[serde(skip_serializing_if = "is_default")]
    pub bearer_token: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub proxy_required: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub allowed_connection_types: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn permission_limits_flatten_like_go() {
        let mut upl = UserPermissionLimits::default();
        upl.permissions.publish.allow.push("foo.>".into());
        upl.limits.nats_limits = NatsLimits::UNLIMITED;
        upl.limits.user_limits.src = vec!["10.0.0.0/8".into()];
        let out = json::to_vec(&upl).map(String::from_utf8);
        assert_eq!(
            out.ok().and_then(Result::ok).as_deref(),
            Some(
                r#"{"pub":{"allow":["foo.\u003e"]},"sub":{},"src":["10.0.0.0/8"],"subs":-1,"data":-1,"payload":-1}"#
            )
        );
    }

    #[test]
    fn src_accepts_comma_string() {
        let u: Result<UserLimits, _> =
            json::from_slice(br#"{"src":"10.0.0.0/8, 1.2.3.4/32,10.0.0.0/8"}"#);
        assert_eq!(
            u.ok().map(|u| u.src),
            Some(vec!["10.0.0.0/8".to_string(), "1.2.3.4/32".to_string()])
        );
    }

    #[test]
    fn export_type_names() {
        let t: Result<ExportType, _> = json::from_slice(br#""service""#);
        assert_eq!(t.ok(), Some(ExportType::Service));
        let t: Result<ExportType, _> = json::from_slice(br#""bogus""#);
        assert!(t.is_err());
    }
}
