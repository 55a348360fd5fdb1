//! The keys behind operator mode, and how they are kept in Secrets.
//!
//! Each NatsCluster in operator mode has its own operator: an operator key pair (identity,
//! signs only the operator JWT), an operator signing key (signs account JWTs, so the
//! identity seed is needed only once), a system account, and a system-account user that
//! the operator itself connects with to push account JWTs. They are generated once, when
//! the first Account names the cluster, into the Secret `<cluster>-operator-keys` in the
//! NatsCluster's namespace, owned by the NatsCluster (deleting the cluster deletes them,
//! and with them every credential it ever issued). One operator per cluster keeps trust
//! domains apart: a creds file issued for one NatsCluster is worthless on another.
//!
//! Each Account has `<account>-account-keys` in its own namespace, owned by the Account:
//! the account identity seed, one seed per named signing key, and the revocations of
//! deleted Users (`revoked.<user key>` = unix seconds). Revocations live beside the keys
//! because they must outlive the User objects they are about, and a Secret survives an
//! operator restart where in-memory state would not.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use natrix_jwt::nkeys::KeyPair;
use natrix_jwt::{AccountClaims, OperatorClaims, UserClaims, encode_at, format_creds};

use super::AccountsError;

/// Secret keys of the operator identity Secret.
pub const OPERATOR_SEED: &str = "operator.seed";
pub const OPERATOR_SIGNING_SEED: &str = "operator-signing.seed";
pub const OPERATOR_JWT: &str = "operator.jwt";
pub const SYSTEM_ACCOUNT_SEED: &str = "system-account.seed";
pub const SYSTEM_ACCOUNT_JWT: &str = "system-account.jwt";
pub const SYSTEM_USER_CREDS: &str = "system-user.creds";

/// Secret keys of an account key Secret.
pub const ACCOUNT_SEED: &str = "account.seed";
/// Prefix of a signing key seed: `signing.<name>.seed`.
pub const SIGNING_PREFIX: &str = "signing.";
/// Prefix of a revocation: `revoked.<user public key>` = unix seconds.
pub const REVOKED_PREFIX: &str = "revoked.";

/// The name of the system account in its JWT (as `nsc add operator --sys` calls it).
pub const SYSTEM_ACCOUNT_NAME: &str = "SYS";

/// Name of the operator identity Secret of a NatsCluster.
pub fn operator_secret(cluster: &str) -> String {
    format!("{cluster}-operator-keys")
}

/// Name of an Account's key Secret.
pub fn account_secret(account: &str) -> String {
    format!("{account}-account-keys")
}

fn nkey_err(e: impl std::fmt::Display) -> AccountsError {
    AccountsError::NKey(e.to_string())
}

fn seed_of(kp: &KeyPair) -> Result<String, AccountsError> {
    kp.seed().map_err(nkey_err)
}

/// A key pair from a seed, checking its kind by the seed's prefix (`SO`, `SA`, `SU`).
pub fn key_from_seed(seed: &str, prefix: &str) -> Result<KeyPair, AccountsError> {
    if !seed.starts_with(prefix) {
        return Err(AccountsError::NKey(format!(
            "expected a seed starting with {prefix}"
        )));
    }
    KeyPair::from_seed(seed).map_err(nkey_err)
}

fn text(
    secret: &str,
    data: &BTreeMap<String, ByteString>,
    key: &str,
) -> Result<String, AccountsError> {
    let bad = |problem: String| AccountsError::BadSecret {
        secret: secret.to_string(),
        problem,
    };
    let bytes = data
        .get(key)
        .ok_or_else(|| bad(format!("key {key} is missing")))?;
    let s =
        String::from_utf8(bytes.0.clone()).map_err(|_| bad(format!("key {key} is not UTF-8")))?;
    // Seeds and JWTs are single tokens; a creds file keeps its layout.
    Ok(if key.ends_with(".creds") {
        s
    } else {
        s.trim().to_string()
    })
}

fn bytes(s: &str) -> ByteString {
    ByteString(s.as_bytes().to_vec())
}

/// The operator identity of one NatsCluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorIdentity {
    pub operator_seed: String,
    pub signing_seed: String,
    pub operator_jwt: String,
    pub system_account_seed: String,
    pub system_account_jwt: String,
    pub system_user_creds: String,
}

impl OperatorIdentity {
    /// New keys for the NatsCluster `cluster`, with the operator JWT, the system account
    /// JWT and the system user's creds signed at `now` (unix seconds).
    pub fn generate(cluster: &str, now: i64) -> Result<Self, AccountsError> {
        let operator = KeyPair::new_operator();
        let signing = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let user = KeyPair::new_user();

        let mut op = OperatorClaims::new(operator.public_key());
        op.data.name = cluster.to_string();
        op.nats.signing_keys = vec![signing.public_key()];
        op.nats.system_account = system.public_key();
        let operator_jwt = encode_at(&op, &operator, now)?;

        let mut sys = AccountClaims::new(system.public_key());
        sys.data.name = SYSTEM_ACCOUNT_NAME.to_string();
        let system_account_jwt = encode_at(&sys, &signing, now)?;

        let mut u = UserClaims::new(user.public_key());
        u.data.name = "natrix-operator".to_string();
        let user_jwt = encode_at(&u, &system, now)?;
        let system_user_creds = format_creds(&user_jwt, &seed_of(&user)?)?;

        Ok(Self {
            operator_seed: seed_of(&operator)?,
            signing_seed: seed_of(&signing)?,
            operator_jwt,
            system_account_seed: seed_of(&system)?,
            system_account_jwt,
            system_user_creds,
        })
    }

    /// Reads the identity back from its Secret's data, checking that the parts belong
    /// together (a hand-edited Secret is reported, not half-used).
    pub fn from_secret_data(
        secret: &str,
        data: &BTreeMap<String, ByteString>,
    ) -> Result<Self, AccountsError> {
        let id = Self {
            operator_seed: text(secret, data, OPERATOR_SEED)?,
            signing_seed: text(secret, data, OPERATOR_SIGNING_SEED)?,
            operator_jwt: text(secret, data, OPERATOR_JWT)?,
            system_account_seed: text(secret, data, SYSTEM_ACCOUNT_SEED)?,
            system_account_jwt: text(secret, data, SYSTEM_ACCOUNT_JWT)?,
            system_user_creds: text(secret, data, SYSTEM_USER_CREDS)?,
        };
        let op = natrix_jwt::decode_operator(&id.operator_jwt)?;
        let bad = |problem: &str| AccountsError::BadSecret {
            secret: secret.to_string(),
            problem: problem.to_string(),
        };
        if op.data.subject != id.operator_public_key()? {
            return Err(bad("operator.jwt is not about operator.seed's key"));
        }
        if !op.nats.signing_keys.contains(&id.signer()?.public_key()) {
            return Err(bad(
                "operator.jwt does not list operator-signing.seed's key",
            ));
        }
        if op.nats.system_account != id.system_account_public_key()? {
            return Err(bad("operator.jwt names another system account"));
        }
        Ok(id)
    }

    /// The Secret data.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        [
            (OPERATOR_SEED, &self.operator_seed),
            (OPERATOR_SIGNING_SEED, &self.signing_seed),
            (OPERATOR_JWT, &self.operator_jwt),
            (SYSTEM_ACCOUNT_SEED, &self.system_account_seed),
            (SYSTEM_ACCOUNT_JWT, &self.system_account_jwt),
            (SYSTEM_USER_CREDS, &self.system_user_creds),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), bytes(v)))
        .collect()
    }

    pub fn operator_public_key(&self) -> Result<String, AccountsError> {
        Ok(key_from_seed(&self.operator_seed, "SO")?.public_key())
    }

    pub fn system_account_public_key(&self) -> Result<String, AccountsError> {
        Ok(key_from_seed(&self.system_account_seed, "SA")?.public_key())
    }

    /// The key that signs account JWTs.
    pub fn signer(&self) -> Result<KeyPair, AccountsError> {
        key_from_seed(&self.signing_seed, "SO")
    }
}

/// The keys and revocations of one Account.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AccountKeys {
    pub account_seed: String,
    /// Signing key name → seed.
    pub signing: BTreeMap<String, String>,
    /// User public key → unix seconds: user JWTs issued at or before are revoked.
    pub revoked: BTreeMap<String, i64>,
}

impl AccountKeys {
    /// A fresh account key and seeds for `signing_names`.
    pub fn generate<'a>(
        signing_names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, AccountsError> {
        let mut keys = Self {
            account_seed: seed_of(&KeyPair::new_account())?,
            ..Self::default()
        };
        keys.add_missing(signing_names)?;
        Ok(keys)
    }

    /// Adds a seed for each name that has none; returns whether anything was added.
    pub fn add_missing<'a>(
        &mut self,
        signing_names: impl IntoIterator<Item = &'a str>,
    ) -> Result<bool, AccountsError> {
        let mut added = false;
        for name in signing_names {
            if !self.signing.contains_key(name) {
                self.signing
                    .insert(name.to_string(), seed_of(&KeyPair::new_account())?);
                added = true;
            }
        }
        Ok(added)
    }

    pub fn from_secret_data(
        secret: &str,
        data: &BTreeMap<String, ByteString>,
    ) -> Result<Self, AccountsError> {
        let mut keys = Self {
            account_seed: text(secret, data, ACCOUNT_SEED)?,
            ..Self::default()
        };
        key_from_seed(&keys.account_seed, "SA")?;
        for key in data.keys() {
            if let Some(name) = key
                .strip_prefix(SIGNING_PREFIX)
                .and_then(|k| k.strip_suffix(".seed"))
            {
                let seed = text(secret, data, key)?;
                key_from_seed(&seed, "SA")?;
                keys.signing.insert(name.to_string(), seed);
            } else if let Some(user) = key.strip_prefix(REVOKED_PREFIX) {
                let at = text(secret, data, key)?.parse::<i64>().map_err(|_| {
                    AccountsError::BadSecret {
                        secret: secret.to_string(),
                        problem: format!("{key} is not a unix time"),
                    }
                })?;
                keys.revoked.insert(user.to_string(), at);
            }
        }
        Ok(keys)
    }

    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        let mut out = BTreeMap::new();
        out.insert(ACCOUNT_SEED.to_string(), bytes(&self.account_seed));
        for (name, seed) in &self.signing {
            out.insert(format!("{SIGNING_PREFIX}{name}.seed"), bytes(seed));
        }
        for (user, at) in &self.revoked {
            out.insert(format!("{REVOKED_PREFIX}{user}"), bytes(&at.to_string()));
        }
        out
    }

    pub fn account(&self) -> Result<KeyPair, AccountsError> {
        key_from_seed(&self.account_seed, "SA")
    }

    pub fn public_key(&self) -> Result<String, AccountsError> {
        Ok(self.account()?.public_key())
    }

    /// The key pair of a named signing key.
    pub fn signing_key(&self, name: &str) -> Result<Option<KeyPair>, AccountsError> {
        self.signing
            .get(name)
            .map(|s| key_from_seed(s, "SA"))
            .transpose()
    }

    /// Public key of every named signing key.
    pub fn signing_public_keys(&self) -> Result<BTreeMap<String, String>, AccountsError> {
        self.signing
            .iter()
            .map(|(n, s)| Ok((n.clone(), key_from_seed(s, "SA")?.public_key())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_identity_round_trips_and_verifies() {
        let id = OperatorIdentity::generate("nats", 1_700_000_000).expect("generate");
        let back = OperatorIdentity::from_secret_data("s", &id.to_secret_data()).expect("read");
        assert_eq!(back, id);
        let op = natrix_jwt::decode_operator(&id.operator_jwt).expect("operator jwt");
        assert_eq!(op.data.name, "nats");
        assert_eq!(op.data.issuer, op.data.subject, "self-signed");
        let sys = natrix_jwt::decode_account(&id.system_account_jwt).expect("sys jwt");
        assert_eq!(
            Some(sys.data.subject.clone()),
            id.system_account_public_key().ok()
        );
        assert!(op.did_sign(&sys.data.issuer, &sys.data.subject));
        let creds = natrix_jwt::parse_creds(&id.system_user_creds).expect("creds");
        let user = natrix_jwt::decode_user(&creds.jwt).expect("user jwt");
        assert_eq!(user.data.issuer, sys.data.subject);
    }

    #[test]
    fn a_damaged_operator_secret_is_reported() {
        let id = OperatorIdentity::generate("nats", 1).expect("generate");
        let other = OperatorIdentity::generate("nats", 1).expect("generate");
        let mut data = id.to_secret_data();
        data.insert(OPERATOR_JWT.into(), bytes(&other.operator_jwt));
        let err =
            OperatorIdentity::from_secret_data("nats-operator-keys", &data).expect_err("mismatch");
        assert!(err.to_string().contains("nats-operator-keys"), "{err}");
        data.remove(OPERATOR_JWT);
        let err = OperatorIdentity::from_secret_data("x", &data).expect_err("missing");
        assert!(err.to_string().contains("operator.jwt is missing"), "{err}");
    }

    #[test]
    fn account_keys_round_trip_with_signing_keys_and_revocations() {
        let mut keys = AccountKeys::generate(["a", "b"]).expect("generate");
        keys.revoked.insert("UABC".into(), 42);
        let back = AccountKeys::from_secret_data("s", &keys.to_secret_data()).expect("read");
        assert_eq!(back, keys);
        assert_eq!(keys.signing.len(), 2);
        assert!(!keys.clone().add_missing(["a"]).expect("add"));
        assert!(keys.add_missing(["c"]).expect("add"));
        let mut bad = keys.to_secret_data();
        bad.insert("signing.x.seed".into(), bytes("SUnotanaccount"));
        assert!(AccountKeys::from_secret_data("s", &bad).is_err());
    }
}
