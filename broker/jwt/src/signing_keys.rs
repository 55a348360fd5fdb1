//! An account's signing keys: plain keys, or scoped keys whose users take their permissions
//! from a template. Go: `signingkeys.go`.
//!
//! On the wire it is one sorted array mixing strings (plain keys) and objects (scopes).

use crate::UserClaims;
use crate::json::is_default;
use crate::types::{NatsLimits, UserPermissionLimits};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The kind of a scope; Go knows only `user_scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeKind {
    #[default]
    #[serde(rename = "user_scope")]
    UserScope,
}

/// A scoped signing key: users it signs get `template`'s permissions and limits.
/// No field is `omitempty` in Go, so all are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    pub kind: ScopeKind,
    pub key: String,
    pub role: String,
    pub template: UserPermissionLimits,
    pub description: String,
}

impl UserScope {
    /// Go's `NewUserScope`: an empty template with unlimited subs, data and payload.
    pub fn new(key: impl Into<String>) -> Self {
        let mut template = UserPermissionLimits::default();
        template.limits.nats_limits = NatsLimits::UNLIMITED;
        UserScope {
            kind: ScopeKind::UserScope,
            key: key.into(),
            role: String::new(),
            template,
            description: String::new(),
        }
    }

    /// Go's `ValidateScopedSigner`: the user must be issued by this key and carry no
    /// permissions or limits of its own.
    pub fn validate_scoped_signer(&self, user: &UserClaims) -> Result<(), &'static str> {
        if user.data.issuer != self.key {
            return Err("issuer not the scoped signer");
        }
        if !user.has_empty_permissions() {
            return Err("scoped users require no permissions or limits set");
        }
        Ok(())
    }
}

/// Signing keys: key → its scope (`None` for a plain key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningKeys(pub BTreeMap<String, Option<UserScope>>);

impl SigningKeys {
    pub fn add(&mut self, key: impl Into<String>) {
        self.0.insert(key.into(), None);
    }

    pub fn add_scoped(&mut self, scope: UserScope) {
        self.0.insert(scope.key.clone(), Some(scope));
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The scope of `key`, when it is a scoped signing key.
    pub fn scope(&self, key: &str) -> Option<&UserScope> {
        self.0.get(key).and_then(Option::as_ref)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for SigningKeys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Item<'a> {
            Key(&'a str),
            Scope(&'a UserScope),
        }
        s.collect_seq(self.0.iter().map(|(k, v)| match v {
            Some(scope) => Item::Scope(scope),
            None => Item::Key(k),
        }))
    }
}

impl<'de> Deserialize<'de> for SigningKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let items = Vec::<Value>::deserialize(d)?;
        let mut keys = SigningKeys::default();
        for item in items {
            match item {
                Value::String(k) => keys.add(k),
                Value::Object(mut obj) => {
                    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
                    if kind != "user_scope" {
                        return Err(D::Error::custom(format!(
                            "unknown signing key scope {kind:?}"
                        )));
                    }
                    // Go unmarshals into NewUserScope(), so absent limits stay unlimited.
                    let template = obj
                        .entry("template")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(t) = template {
                        for k in ["subs", "data", "payload"] {
                            t.entry(k).or_insert(Value::from(-1));
                        }
                    }
                    obj.entry("role").or_insert(Value::from(""));
                    obj.entry("key").or_insert(Value::from(""));
                    obj.entry("description").or_insert(Value::from(""));
                    let scope: UserScope =
                        crate::json::from_value(Value::Object(obj)).map_err(D::Error::custom)?;
                    keys.add_scoped(scope);
                }
                // Go's decoder skips anything else in the array.
                _ => {}
            }
        }
        Ok(keys)
    }
}

pub(crate) fn is_empty_keys(k: &SigningKeys) -> bool {
    is_default(&k.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn mixed_array_round_trip() {
        let text = r#"["AKEY",{"kind":"user_scope","key":"BKEY","role":"dev","template":{"pub":{"allow":["a"]},"sub":{},"subs":-1,"data":-1,"payload":-1},"description":""}]"#;
        let keys: Result<SigningKeys, _> = json::from_slice(text.as_bytes());
        let keys = keys.ok().unwrap_or_default();
        assert_eq!(keys.len(), 2);
        assert!(keys.scope("AKEY").is_none());
        assert_eq!(keys.scope("BKEY").map(|s| s.role.as_str()), Some("dev"));
        let out = json::to_vec(&keys).map(String::from_utf8);
        assert_eq!(out.ok().and_then(Result::ok).as_deref(), Some(text));
    }

    #[test]
    fn absent_template_limits_are_unlimited() {
        let keys: Result<SigningKeys, _> =
            json::from_slice(br#"[{"kind":"user_scope","key":"K","template":{}}]"#);
        let keys = keys.ok().unwrap_or_default();
        assert_eq!(
            keys.scope("K").map(|s| s.template.limits.nats_limits),
            Some(NatsLimits::UNLIMITED)
        );
    }

    #[test]
    fn unknown_scope_kind_is_an_error() {
        let keys: Result<SigningKeys, _> = json::from_slice(br#"[{"kind":"other","key":"K"}]"#);
        assert!(keys.is_err());
    }
}
