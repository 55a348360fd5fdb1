//! Encoding and signing, as Go's `ClaimsData.doEncode`: set `type`, `iss`, `iat`, the `jti`
//! hash and `version` 2, then sign `header.payload` with the issuer's seed.
//!
//! The `jti` is base32 (no padding) of SHA-512/256 over the JSON of the registered claims
//! alone, with `jti` empty and `iss`/`iat` already set.

use crate::claims::{ClaimSet, ClaimsData, GenericClaims, Payload};
use crate::decode::{ALGORITHM_NKEY, B64, TOKEN_TYPE_JWT};
use crate::keys::key_kind;
use crate::{JwtError, base32, json, now_unix};
use base64::Engine;
use nkeys::KeyPair;
use serde::Serialize;

/// Signs `claims` with `issuer` (a key pair holding a seed), issued now.
pub fn encode<P: Payload>(claims: &ClaimSet<P>, issuer: &KeyPair) -> Result<String, JwtError> {
    encode_at(claims, issuer, now_unix())
}

/// [`encode`] with an explicit issue time (unix seconds), for reproducible tokens.
pub fn encode_at<P: Payload>(
    claims: &ClaimSet<P>,
    issuer: &KeyPair,
    issued_at: i64,
) -> Result<String, JwtError> {
    P::check_subject(&claims.data.subject)?;
    if claims.data.subject.is_empty() {
        return Err(JwtError::InvalidClaims("subject is not set".into()));
    }
    let issuer_key = issuer.public_key();
    if !key_kind(&issuer_key).is_some_and(|k| P::ISSUERS.contains(&k)) {
        return Err(JwtError::IssuerKind(P::ISSUERS));
    }
    let mut c = claims.clone();
    c.nats.prepare_encode();
    c.nats.generic_mut().claim_type = P::CLAIM_TYPE.to_string();
    stamp(&mut c.data, issuer_key, issued_at)?;
    c.nats.generic_mut().version = 2;
    sign(&c, issuer)
}

/// Signs generic claims (any issuer kind), issued now.
pub fn encode_generic(claims: &GenericClaims, issuer: &KeyPair) -> Result<String, JwtError> {
    encode_generic_at(claims, issuer, now_unix())
}

/// [`encode_generic`] with an explicit issue time.
pub fn encode_generic_at(
    claims: &GenericClaims,
    issuer: &KeyPair,
    issued_at: i64,
) -> Result<String, JwtError> {
    if claims.data.subject.is_empty() {
        return Err(JwtError::InvalidClaims("subject is not set".into()));
    }
    let mut c = claims.clone();
    stamp(&mut c.data, issuer.public_key(), issued_at)?;
    c.nats.insert("version".into(), serde_json::Value::from(2));
    sign(&c, issuer)
}

fn stamp(data: &mut ClaimsData, issuer: String, issued_at: i64) -> Result<(), JwtError> {
    data.issuer = issuer;
    data.issued_at = issued_at;
    data.id = String::new();
    data.id = hash(data)?;
    Ok(())
}

fn hash(data: &ClaimsData) -> Result<String, JwtError> {
    let bytes = json::to_vec(data).map_err(|e| JwtError::InvalidClaims(e.to_string()))?;
    let digest = ring::digest::digest(&ring::digest::SHA512_256, &bytes);
    Ok(base32::encode(digest.as_ref(), false))
}

pub(crate) fn sign<T: Serialize>(claims: &T, issuer: &KeyPair) -> Result<String, JwtError> {
    let header = format!(r#"{{"typ":"{TOKEN_TYPE_JWT}","alg":"{ALGORITHM_NKEY}"}}"#);
    let payload = json::to_vec(claims).map_err(|e| JwtError::InvalidClaims(e.to_string()))?;
    let to_sign = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = issuer.sign(to_sign.as_bytes()).map_err(JwtError::Sign)?;
    Ok(format!("{to_sign}.{}", B64.encode(sig)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;
    use std::collections::BTreeMap;

    const IAT: i64 = 1_700_000_000;

    fn roundtrip<P: Payload + PartialEq + std::fmt::Debug>(
        claims: &ClaimSet<P>,
        issuer: &KeyPair,
    ) -> ClaimSet<P>
    where
        Claims: TryIntoSet<P>,
    {
        let token = encode_at(claims, issuer, IAT);
        assert!(token.is_ok(), "encode: {token:?}");
        let token = token.unwrap_or_default();
        let decoded = decode(&token);
        assert!(decoded.is_ok(), "decode: {decoded:?}");
        let decoded = decoded.ok().and_then(|c| c.into_set());
        assert!(decoded.is_some(), "wrong kind");
        let decoded = decoded.unwrap_or_default();
        assert_eq!(decoded.data.issuer, issuer.public_key());
        assert_eq!(decoded.data.issued_at, IAT);
        assert_eq!(decoded.data.id.len(), 52, "base32 of 32 bytes, no padding");
        assert_eq!(decoded.nats.generic().claim_type, P::CLAIM_TYPE);
        assert_eq!(decoded.nats.generic().version, 2);
        let mut expected = claims.clone();
        expected.nats.prepare_encode();
        expected.data = decoded.data.clone();
        *expected.nats.generic_mut() = decoded.nats.generic().clone();
        assert_eq!(decoded, expected);
        // Re-encoding the decoded claims at the same time yields the same token.
        assert_eq!(encode_at(&decoded, issuer, IAT).ok(), Some(token));
        decoded
    }

    /// Test helper: the claim set of one kind out of the enum.
    trait TryIntoSet<P> {
        fn into_set(self) -> Option<ClaimSet<P>>;
    }
    macro_rules! into_set {
        ($p:ty, $v:ident) => {
            impl TryIntoSet<$p> for Claims {
                fn into_set(self) -> Option<ClaimSet<$p>> {
                    match self {
                        Claims::$v(c) => Some(c),
                        _ => None,
                    }
                }
            }
        };
    }
    into_set!(Operator, Operator);
    into_set!(Account, Account);
    into_set!(User, User);
    into_set!(Activation, Activation);
    into_set!(AuthorizationRequest, AuthorizationRequest);
    into_set!(AuthorizationResponse, AuthorizationResponse);

    #[test]
    fn operator_round_trip() {
        let op = KeyPair::new_operator();
        let mut c = OperatorClaims::new(op.public_key());
        c.data.name = "O<&>".into();
        c.data.expires = IAT + 3600;
        c.nats.signing_keys = vec![KeyPair::new_operator().public_key()];
        c.nats.account_server_url = "http://localhost:9090/jwt/v1".into();
        c.nats.operator_service_urls = vec!["nats://localhost:4222".into()];
        c.nats.system_account = KeyPair::new_account().public_key();
        c.nats.assert_server_version = "2.10.0".into();
        c.nats.strict_signing_key_usage = true;
        c.nats.generic.tags = vec!["a".into()];
        let d = roundtrip(&c, &op);
        assert!(d.data.is_self_signed());
        assert!(d.did_sign(&op.public_key(), &op.public_key()));
        assert!(
            !d.did_sign(&op.public_key(), "ASOMEACCOUNT"),
            "strict usage"
        );
        assert!(d.did_sign(&c.nats.signing_keys[0], "ASOMEACCOUNT"));
    }

    fn full_account(subject: &str) -> AccountClaims {
        let mut c = AccountClaims::new(subject);
        c.data.name = "acc".into();
        let importer = KeyPair::new_account().public_key();
        c.nats.exports = vec![
            Export {
                name: "svc".into(),
                subject: "svc.>".into(),
                export_type: ExportType::Service,
                token_req: true,
                revocations: RevocationList(BTreeMap::from([(importer.clone(), IAT)])),
                response_type: ResponseType::CHUNKED.into(),
                response_threshold: 2_000_000_000,
                latency: Some(ServiceLatency {
                    sampling: SamplingRate(25),
                    results: "lat.results".into(),
                }),
                allow_trace: true,
                advertise: true,
                info: Info {
                    description: "a service".into(),
                    info_url: "https://example.com".into(),
                },
                ..Export::default()
            },
            Export {
                name: "acct".into(),
                subject: "events.*.>".into(),
                export_type: ExportType::Stream,
                account_token_position: 2,
                ..Export::default()
            },
        ];
        c.nats.imports = vec![Import {
            name: "imp".into(),
            subject: "other.>".into(),
            account: importer,
            local_subject: "mine.>".into(),
            import_type: ExportType::Stream,
            allow_trace: true,
            ..Import::default()
        }];
        c.nats.limits.jetstream_tiered = BTreeMap::from([
            (
                "R1".to_string(),
                JetStreamLimits {
                    memory_storage: 1 << 20,
                    disk_storage: 1 << 30,
                    streams: 10,
                    consumer: 100,
                    max_ack_pending: 1000,
                    memory_max_stream_bytes: 1 << 10,
                    disk_max_stream_bytes: 1 << 20,
                    max_bytes_required: true,
                },
            ),
            ("R3".to_string(), JetStreamLimits::default()),
        ]);
        c.nats.limits.account.disallow_bearer = true;
        c.nats.signing_keys.add(KeyPair::new_account().public_key());
        let mut scope = UserScope::new(KeyPair::new_account().public_key());
        scope.role = "dev".into();
        scope.template.permissions.publish.allow = vec!["dev.>".into()];
        scope.template.permissions.resp = Some(ResponsePermission {
            max: 1,
            ttl: 5_000_000_000,
        });
        c.nats.signing_keys.add_scoped(scope);
        c.nats.revocations.revoke(ALL, IAT - 10);
        c.nats
            .revocations
            .revoke(KeyPair::new_user().public_key(), IAT);
        c.nats.default_permissions.subscribe.deny = vec!["secret.>".into()];
        c.nats.mappings = BTreeMap::from([(
            "a.*".to_string(),
            vec![
                WeightedMapping {
                    subject: "b.$1".into(),
                    weight: 40,
                    cluster: String::new(),
                },
                WeightedMapping {
                    subject: "c.$1".into(),
                    weight: 60,
                    cluster: "east".into(),
                },
            ],
        )]);
        c.nats.authorization = ExternalAuthorization {
            auth_users: vec![KeyPair::new_user().public_key()],
            allowed_accounts: vec![ANY_ACCOUNT.into()],
            xkey: nkeys::XKey::new().public_key(),
        };
        c.nats.trace = Some(MsgTrace {
            destination: "trace.dest".into(),
            sampling: 50,
        });
        c.nats.cluster_traffic = CLUSTER_TRAFFIC_OWNER.into();
        c.nats.info.description = "described".into();
        c
    }

    #[test]
    fn account_round_trip_sorted_and_helpers() {
        let op = KeyPair::new_operator();
        let acc = KeyPair::new_account();
        let c = full_account(&acc.public_key());
        let d = roundtrip(&c, &op);
        // Exports are sorted by subject on encode, like Go.
        assert_eq!(d.nats.exports[0].subject, "events.*.>");
        assert!(d.nats.limits.is_jetstream_enabled());
        let scoped = c
            .nats
            .signing_keys
            .keys()
            .find(|k| c.signing_key_scope(k).is_some());
        let scoped = scoped.unwrap_or_default();
        assert_eq!(
            d.signing_key_scope(scoped).map(|s| s.role.as_str()),
            Some("dev")
        );
        assert!(d.is_revoked("UANYONE", IAT - 10), "* applies to everyone");
        assert!(!d.is_revoked("UANYONE", IAT - 9));
        // An account may also sign itself (self-signed accounts are legal in Go).
        roundtrip(&c, &acc);
    }

    #[test]
    fn account_claim_revocation_and_activation_revocation() {
        let op = KeyPair::new_operator();
        let acc = KeyPair::new_account();
        let user = KeyPair::new_user();
        let mut a = AccountClaims::new(acc.public_key());
        a.nats.revocations.revoke(user.public_key(), IAT);
        let mut u = UserClaims::new(user.public_key());
        u.data.issued_at = IAT;
        assert!(a.is_claim_revoked(&u));
        u.data.issued_at = IAT + 1;
        assert!(!a.is_claim_revoked(&u));
        u.data.issued_at = 0;
        assert!(a.is_claim_revoked(&u), "no iat counts as revoked");

        let c = full_account(&acc.public_key());
        let importer = c.nats.exports[0]
            .revocations
            .0
            .keys()
            .next()
            .cloned()
            .unwrap_or_default();
        let mut act = ActivationClaims::new(importer);
        act.data.issued_at = IAT;
        assert!(c.is_activation_revoked("svc.>", &act));
        act.data.issued_at = IAT + 1;
        assert!(!c.is_activation_revoked("svc.>", &act));
        assert!(c.is_activation_revoked("no.such.export", &act));
        let _ = op;
    }

    #[test]
    fn user_round_trip_with_signing_key() {
        let acc = KeyPair::new_account();
        let sk = KeyPair::new_account();
        let user = KeyPair::new_user();
        let mut c = UserClaims::new(user.public_key());
        c.data.name = "alice".into();
        c.data.expires = IAT + 60;
        c.data.not_before = IAT - 60;
        c.data.audience = "aud".into();
        let upl = &mut c.nats.permission_limits;
        upl.permissions.publish = Permission {
            allow: vec!["foo.>".into()],
            deny: vec!["foo.bar".into()],
        };
        upl.permissions.subscribe.allow = vec!["_INBOX.>".into(), "q queue".into()];
        upl.permissions.resp = Some(ResponsePermission { max: 1, ttl: 0 });
        upl.limits.user_limits.src = vec!["127.0.0.1/32".into()];
        upl.limits.user_limits.times = vec![TimeRange {
            start: "01:00:00".into(),
            end: "23:00:00".into(),
        }];
        upl.limits.user_limits.locale = "Europe/Berlin".into();
        upl.limits.nats_limits = NatsLimits {
            subs: 10,
            data: 1 << 20,
            payload: 1024,
        };
        upl.bearer_token = true;
        upl.proxy_required = true;
        upl.allowed_connection_types = vec![
            CONNECTION_TYPE_STANDARD.into(),
            CONNECTION_TYPE_WEBSOCKET.into(),
        ];
        c.nats.issuer_account = acc.public_key();
        let d = roundtrip(&c, &sk);
        assert_eq!(d.account(), acc.public_key());
        assert!(d.is_bearer_token());
        assert!(!d.has_empty_permissions());
        let mut a = AccountClaims::new(acc.public_key());
        assert!(!a.did_sign(&sk.public_key(), &acc.public_key()));
        a.nats.signing_keys.add(sk.public_key());
        assert!(a.did_sign(&sk.public_key(), &acc.public_key()));
        assert!(a.did_sign(&acc.public_key(), ""));
    }

    #[test]
    fn scoped_signer_rules() {
        let sk = KeyPair::new_account();
        let scope = UserScope::new(sk.public_key());
        let mut u = UserClaims::with_subject(KeyPair::new_user().public_key());
        u.data.issuer = sk.public_key();
        assert_eq!(scope.validate_scoped_signer(&u), Ok(()));
        let limited = UserClaims::new(u.data.subject.clone());
        let mut limited = limited;
        limited.data.issuer = sk.public_key();
        assert_eq!(
            scope.validate_scoped_signer(&limited),
            Err("scoped users require no permissions or limits set")
        );
        u.data.issuer = "AOTHER".into();
        assert_eq!(
            scope.validate_scoped_signer(&u),
            Err("issuer not the scoped signer")
        );
    }

    #[test]
    fn activation_round_trip() {
        let exporter = KeyPair::new_account();
        let importer = KeyPair::new_account();
        let mut c = ActivationClaims::new(importer.public_key());
        c.nats.import_subject = "svc.*.x".into();
        c.nats.import_type = ExportType::Service;
        c.nats.issuer_account = exporter.public_key();
        let d = roundtrip(&c, &exporter);
        assert!(
            d.hash_id()
                .is_some_and(|h| h.len() == 56 && h.ends_with("===="))
        );
        let token = encode_at(&c, &exporter, IAT).unwrap_or_default();
        let text = payload_text(&token);
        assert!(
            text.contains(r#""subject":"svc.*.x","kind":"service""#),
            "{text}"
        );
    }

    #[test]
    fn authorization_round_trips() {
        let server = KeyPair::new_server();
        let user = KeyPair::new_user();
        let mut req = AuthorizationRequestClaims::with_subject(user.public_key());
        req.data.audience = "nats-authorization-request".into();
        req.nats.server = ServerId {
            name: "s1".into(),
            host: "127.0.0.1".into(),
            id: server.public_key(),
            version: "2.10.0".into(),
            cluster: "c".into(),
            tags: vec!["t".into()],
            xkey: nkeys::XKey::new().public_key(),
        };
        req.nats.user_nkey = user.public_key();
        req.nats.client_information = ClientInformation {
            host: "127.0.0.1".into(),
            id: 7,
            kind: "Client".into(),
            client_type: "nats".into(),
            ..ClientInformation::default()
        };
        req.nats.connect_options = ConnectOptions {
            username: "u".into(),
            password: "p".into(),
            protocol: 1,
            lang: "rust".into(),
            ..ConnectOptions::default()
        };
        req.nats.tls = Some(ClientTls {
            version: "1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
            certs: vec!["PEM".into()],
            verified_chains: vec![vec!["PEM".into()]],
        });
        req.nats.request_nonce = "nonce".into();
        roundtrip(&req, &server);
        let text = payload_text(&encode_at(&req, &server, IAT).unwrap_or_default());
        assert!(
            text.contains(r#""protocol":1"#) && text.contains(r#""user_nkey""#),
            "{text}"
        );

        let acc = KeyPair::new_account();
        let mut resp = AuthorizationResponseClaims::with_subject(user.public_key());
        resp.data.audience = server.public_key();
        resp.nats.jwt = "a.b.c".into();
        resp.nats.issuer_account = acc.public_key();
        roundtrip(&resp, &acc);
        // Requests must come from servers, responses from accounts.
        assert!(matches!(
            encode_at(&req, &acc, IAT),
            Err(JwtError::IssuerKind(_))
        ));
        assert!(matches!(
            encode_at(&resp, &server, IAT),
            Err(JwtError::IssuerKind(_))
        ));
    }

    #[test]
    fn generic_round_trip() {
        let kp = KeyPair::new_cluster();
        let mut g = GenericClaims::default();
        g.data.subject = "anything".into();
        g.nats.insert("type".into(), "custom".into());
        g.nats.insert("x".into(), serde_json::json!({"y": [1, 2]}));
        let token = encode_generic_at(&g, &kp, IAT).unwrap_or_default();
        match decode(&token) {
            Ok(Claims::Generic(d)) => {
                assert_eq!(d.claim_type(), "generic");
                assert_eq!(d.nats.get("version"), Some(&serde_json::Value::from(2)));
                assert_eq!(d.nats.get("x"), g.nats.get("x"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn encode_rejects_bad_subjects_and_issuers() {
        let acc = KeyPair::new_account();
        let op = KeyPair::new_operator();
        let u = UserClaims::new(acc.public_key());
        assert_eq!(
            encode(&u, &acc).map_err(|e| e.to_string()),
            Err("expected subject to be user public key".to_string())
        );
        let u = UserClaims::new(KeyPair::new_user().public_key());
        assert_eq!(
            encode(&u, &op).map_err(|e| e.to_string()),
            Err("unable to validate expected prefixes - [account]".to_string())
        );
        let a = AccountClaims::new(acc.public_key());
        assert!(matches!(
            encode(&a, &KeyPair::new_user()),
            Err(JwtError::IssuerKind(_))
        ));
        // A public-only key pair cannot sign.
        let public_only = KeyPair::from_public_key(&op.public_key());
        let public_only = public_only.unwrap_or_else(|_| KeyPair::new_user());
        assert!(matches!(encode(&a, &public_only), Err(JwtError::Sign(_))));
        let req = AuthorizationRequestClaims::default();
        assert_eq!(
            encode(&req, &KeyPair::new_server()).map_err(|e| e.to_string()),
            Err("subject is not set".to_string())
        );
        let mut bad = AccountClaims::new(acc.public_key());
        bad.nats.exports.push(Export {
            subject: "x".into(),
            export_type: ExportType::Service,
            latency: Some(ServiceLatency {
                sampling: SamplingRate(500),
                results: "r".into(),
            }),
            ..Export::default()
        });
        assert!(matches!(encode(&bad, &op), Err(JwtError::InvalidClaims(_))));
    }

    fn payload_text(token: &str) -> String {
        let p = token.split('.').nth(1).unwrap_or_default();
        String::from_utf8(B64.decode(p).unwrap_or_default()).unwrap_or_default()
    }
}
