//! An operator, a system account and two accounts signed with `natrix-jwt`, for the
//! operator-mode tests: A exports a public and a token-required service, B imports both
//! (with an activation A signed, or a forged one B signed itself).

use natrix_jwt::nkeys::KeyPair;
use natrix_jwt::{
    AccountClaims, ActivationClaims, Export, ExportType, Import, OperatorClaims, UserClaims,
    UserScope, encode, format_creds, now_unix,
};

/// Keys and JWTs of one operator with a system account and two accounts.
pub struct Chain {
    pub operator_jwt: String,
    /// The operator's signing key, which signed every account JWT.
    pub op_sk: KeyPair,
    pub sys: KeyPair,
    pub sys_jwt: String,
    pub a: KeyPair,
    pub a_sk: KeyPair,
    pub a_scoped: KeyPair,
    pub a_jwt: String,
    pub b: KeyPair,
    pub b_jwt: String,
    pub revoked: KeyPair,
}

pub fn chain(forge_activation: bool) -> Chain {
    let op = KeyPair::new_operator();
    let op_sk = KeyPair::new_operator();
    let sys = KeyPair::new_account();
    let a = KeyPair::new_account();
    let a_sk = KeyPair::new_account();
    let a_scoped = KeyPair::new_account();
    let b = KeyPair::new_account();
    let revoked = KeyPair::new_user();

    let mut o = OperatorClaims::new(op.public_key());
    o.data.name = "OP".into();
    o.nats.signing_keys.push(op_sk.public_key());
    o.nats.system_account = sys.public_key();
    let operator_jwt = encode(&o, &op).expect("operator");

    let mut s = AccountClaims::new(sys.public_key());
    s.data.name = "SYS".into();
    let sys_jwt = encode(&s, &op_sk).expect("sys");

    let mut ac = AccountClaims::new(a.public_key());
    ac.data.name = "A".into();
    ac.nats.signing_keys.add(a_sk.public_key());
    let mut scope = UserScope::new(a_scoped.public_key());
    scope.role = "dev".into();
    scope.template.permissions.publish.allow = vec!["dev.>".into(), "_INBOX.>".into()];
    scope.template.permissions.subscribe.allow = vec!["dev.>".into(), "_INBOX.>".into()];
    ac.nats.signing_keys.add_scoped(scope);
    ac.nats
        .revocations
        .revoke(revoked.public_key(), now_unix() + 3600);
    ac.nats.exports.push(Export {
        subject: "svc.private".into(),
        export_type: ExportType::Service,
        token_req: true,
        ..Export::default()
    });
    ac.nats.exports.push(Export {
        subject: "svc.public".into(),
        export_type: ExportType::Service,
        ..Export::default()
    });
    let a_jwt = encode(&ac, &op_sk).expect("account A");

    // B imports both services; the private one with an activation A signed (or, forged,
    // one B signed itself).
    let mut act = ActivationClaims::new(b.public_key());
    act.nats.import_subject = "svc.private".into();
    act.nats.import_type = ExportType::Service;
    let signer = if forge_activation { &b } else { &a };
    let token = encode(&act, signer).expect("activation");
    let mut bc = AccountClaims::new(b.public_key());
    bc.data.name = "B".into();
    bc.nats.imports.push(Import {
        subject: "svc.private".into(),
        account: a.public_key(),
        import_type: ExportType::Service,
        token,
        ..Import::default()
    });
    bc.nats.imports.push(Import {
        subject: "svc.public".into(),
        account: a.public_key(),
        import_type: ExportType::Service,
        ..Import::default()
    });
    let b_jwt = encode(&bc, &op_sk).expect("account B");
    Chain {
        operator_jwt,
        op_sk,
        sys,
        sys_jwt,
        a,
        a_sk,
        a_scoped,
        a_jwt,
        b,
        b_jwt,
        revoked,
    }
}

/// A config serving the chain from `resolver: MEMORY`.
pub fn config(c: &Chain) -> String {
    let preload: String = [(&c.sys, &c.sys_jwt), (&c.a, &c.a_jwt), (&c.b, &c.b_jwt)]
        .iter()
        .map(|(k, j)| format!("  {}: \"{}\"\n", k.public_key(), j))
        .collect();
    format!(
        "operator: \"{}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
        c.operator_jwt,
        c.sys.public_key()
    )
}

/// A creds file for `user`, its claims signed by `signer`.
pub fn creds(user: &KeyPair, claims: &UserClaims, signer: &KeyPair) -> String {
    let jwt = encode(claims, signer).expect("user");
    format_creds(&jwt, &user.seed().expect("seed")).expect("creds")
}
