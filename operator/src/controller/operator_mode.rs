//! What the NatsCluster reconciler and the Account/User reconcilers share about operator
//! mode: which Accounts name a cluster, and the cluster's operator identity Secret, which
//! whoever needs it first creates (once: a create that loses the race reads the winner's).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, PostParams};
use kube::{Resource, ResourceExt};

use super::{Error, is_not_found, kube_err};
use crate::accounts::keys::{self, OperatorIdentity};
use crate::crd::NatsCluster;
use crate::crd::accounts::Account;
use crate::render::names;
use crate::render::operator_mode::OperatorMode;

/// Every Account that names the NatsCluster `ns/name`. A 404 (the Account CRD is not
/// installed) means none.
pub async fn cluster_accounts(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Vec<Account>, Error> {
    let api: Api<Account> = Api::all(client.clone());
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) if is_not_found(&e) => Vec::new(),
        Err(e) => return Err(kube_err("list Accounts")(e)),
    };
    let want = (ns.to_string(), name.to_string());
    let mut out: Vec<Account> = list
        .into_iter()
        .filter(|a| a.cluster_key() == want)
        .collect();
    out.sort_by_key(|a| (a.namespace(), a.name_any()));
    Ok(out)
}

/// An owner reference that makes `owner` garbage-collect the object.
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        block_owner_deletion: Some(true),
        controller: Some(true),
    })
}

/// A Secret with the operator's labels (`component` says what it holds), owned by
/// `owner`.
pub fn secret<K: Resource<DynamicType = ()>>(
    name: &str,
    ns: &str,
    component: &str,
    owner: &K,
    data: BTreeMap<String, k8s_openapi::ByteString>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            labels: Some(BTreeMap::from([
                (names::LABEL_NAME.to_string(), "natrix".to_string()),
                (
                    names::LABEL_INSTANCE.to_string(),
                    owner.meta().name.clone().unwrap_or_default(),
                ),
                (
                    names::LABEL_MANAGED_BY.to_string(),
                    names::FIELD_MANAGER.to_string(),
                ),
                (names::LABEL_COMPONENT.to_string(), component.to_string()),
            ])),
            owner_references: owner_ref(owner).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The operator identity of `nc`, created on first use. `Ok(Err(message))` when the
/// Secret exists but is damaged (edited by hand): reported, never replaced, because
/// replacing it would invalidate every credential issued so far.
pub async fn operator_identity(
    client: &kube::Client,
    nc: &NatsCluster,
    now: i64,
) -> Result<Result<OperatorIdentity, String>, Error> {
    let ns = nc.namespace().ok_or(Error::NoNamespace)?;
    let name = keys::operator_secret(&nc.name_any());
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let read = |s: Secret| {
        OperatorIdentity::from_secret_data(&name, &s.data.unwrap_or_default())
            .map_err(|e| e.to_string())
    };
    if let Some(s) = api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("get Secret {name}")))?
    {
        return Ok(read(s));
    }
    let id = match OperatorIdentity::generate(&nc.name_any(), now) {
        Ok(id) => id,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let obj = secret(&name, &ns, "operator-keys", nc, id.to_secret_data());
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(Ok(id)),
        // Someone else created it first: theirs is the one.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let s = api
                .get(&name)
                .await
                .map_err(kube_err(format!("get Secret {name}")))?;
            Ok(read(s))
        }
        Err(e) => Err(kube_err(format!("create Secret {name}"))(e)),
    }
}

/// The operator-mode inputs of the config: the operator JWT, the system account, and
/// every Account that has a signed JWT in its status.
pub fn operator_mode(id: &OperatorIdentity, accounts: &[Account]) -> Result<OperatorMode, String> {
    let system_account = id.system_account_public_key().map_err(|e| e.to_string())?;
    let operator = id.operator_public_key().map_err(|e| e.to_string())?;
    let signer = id.signer().map_err(|e| e.to_string())?.public_key();
    // Only JWTs this cluster's operator signed: a server refuses to start on a preloaded
    // account it does not trust (an Account moved from another cluster still shows the
    // other operator's JWT until it is reconciled).
    let trusted = |jwt: &str| {
        natrix_jwt::decode_account(jwt)
            .is_ok_and(|c| c.data.issuer == operator || c.data.issuer == signer)
    };
    let mut preload = BTreeMap::new();
    preload.insert(system_account.clone(), id.system_account_jwt.clone());
    for a in accounts {
        if let Some(st) = &a.status
            && let (Some(key), Some(jwt)) = (&st.public_key, &st.jwt)
            && trusted(jwt)
        {
            preload.insert(key.clone(), jwt.clone());
        }
    }
    Ok(OperatorMode {
        operator_jwt: id.operator_jwt.clone(),
        system_account,
        preload,
    })
}
