//! The User reconciler: a user key (kept in the `.creds` Secret itself), a user JWT with
//! the spec's permissions signed by the Account's active signing key, the `.creds` file
//! in a Secret owned by the User, and the status.
//!
//! The API calls of one reconcile, in order (asserted by the mock-API tests):
//! 1. `PATCH` the finalizer onto a new User;
//! 2. `GET` the Account (its public key comes from its status);
//! 3. `GET` the Account's key Secret (the signing seeds);
//! 4. `GET` the `.creds` Secret: its seed is kept, so a re-issue (new permissions, a new
//!    signing key) does not change the user's identity; a Secret of that name owned by
//!    someone else is never overwritten;
//! 5. apply the `.creds` Secret when the JWT changed (server-side apply);
//! 6. events, status.
//!
//! Deleting a User writes `revoked.<user key>` into the Account's key Secret; that change
//! wakes the Account reconciler, which signs and pushes the account JWT with the
//! revocation, and the servers close the user's connections.

use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::account::{AccountsContext, REQUEUE_WAITING, USER_FINALIZER, publish, set_finalizer};
use super::operator_mode::secret;
use super::status::condition;
use super::{Error, is_not_found, kube_err};
use crate::accounts::claims::{sign_if_changed, user_claims};
use crate::accounts::keys::{self, AccountKeys, REVOKED_PREFIX};
use crate::crd::accounts::{Account, User, UserStatus};
use crate::render::names;

/// The key of the creds file in the User's Secret.
pub const CREDS_KEY: &str = "user.creds";

struct Outcome {
    ready: bool,
    reason: String,
    message: String,
}

fn waiting(reason: &str, message: String) -> Outcome {
    Outcome {
        ready: false,
        reason: reason.into(),
        message,
    }
}

/// The seed and JWT in an existing creds Secret, if it is this User's and readable.
fn existing_creds(s: &Secret, user: &User) -> Result<Option<(String, String)>, String> {
    let ours = s
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == user.metadata.uid.as_ref());
    if !ours {
        return Err(format!(
            "Secret {} exists and does not belong to this User; choose another spec.secretName or delete that Secret",
            s.name_any()
        ));
    }
    let text = s
        .data
        .as_ref()
        .and_then(|d| d.get(CREDS_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    Ok(text
        .and_then(|t| natrix_jwt::parse_creds(&t).ok())
        .map(|c| (c.seed, c.jwt)))
}

async fn sync(
    ctx: &AccountsContext,
    user: &User,
    ns: &str,
    status: &mut UserStatus,
) -> Result<Outcome, Error> {
    let account_name = &user.spec.account_ref.name;
    let accounts: Api<Account> = Api::namespaced(ctx.client.clone(), ns);
    let Some(acct) = accounts
        .get_opt(account_name)
        .await
        .map_err(kube_err(format!("get Account {account_name}")))?
    else {
        return Ok(waiting(
            "AccountNotFound",
            format!("Account {ns}/{account_name} does not exist"),
        ));
    };
    let Some(account_pk) = acct.status.as_ref().and_then(|s| s.public_key.clone()) else {
        return Ok(waiting(
            "AccountNotReady",
            format!("Account {ns}/{account_name} has no keys yet"),
        ));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let keys_name = keys::account_secret(account_name);
    let Some(ks) = secrets
        .get_opt(&keys_name)
        .await
        .map_err(kube_err(format!("get Secret {keys_name}")))?
    else {
        return Ok(waiting(
            "AccountNotReady",
            format!("Account {ns}/{account_name} has no key Secret yet"),
        ));
    };
    let akeys = match AccountKeys::from_secret_data(&keys_name, &ks.data.unwrap_or_default()) {
        Ok(k) => k,
        Err(e) => return Ok(waiting("AccountKeysInvalid", e.to_string())),
    };
    let signer = match acct.spec.signing_keys.first() {
        None => akeys.account().map_err(|e| Error::Keys(e.to_string()))?,
        Some(k) => match akeys
            .signing_key(&k.name)
            .map_err(|e| Error::Keys(e.to_string()))?
        {
            Some(kp) => kp,
            None => {
                return Ok(waiting(
                    "AccountNotReady",
                    format!(
                        "signing key {:?} of Account {ns}/{account_name} is not generated yet",
                        k.name
                    ),
                ));
            }
        },
    };

    let secret_name = user.secret_name();
    let live = secrets
        .get_opt(&secret_name)
        .await
        .map_err(kube_err(format!("get Secret {secret_name}")))?;
    let previous = match live.as_ref().map(|s| existing_creds(s, user)).transpose() {
        Ok(p) => p.flatten(),
        Err(m) => return Ok(waiting("SecretConflict", m)),
    };
    // Keep the user's key unless it was revoked (a User deleted and made again while its
    // old Secret waits for garbage collection).
    let (seed, prev_jwt) = match previous {
        Some((seed, jwt))
            if natrix_jwt::nkeys::KeyPair::from_seed(&seed)
                .is_ok_and(|kp| !akeys.revoked.contains_key(&kp.public_key())) =>
        {
            (seed, Some(jwt))
        }
        _ => (
            natrix_jwt::nkeys::KeyPair::new_user()
                .seed()
                .map_err(|e| Error::Keys(e.to_string()))?,
            None,
        ),
    };
    let user_kp = keys::key_from_seed(&seed, "SU").map_err(|e| Error::Keys(e.to_string()))?;
    let user_pk = user_kp.public_key();
    status.public_key = Some(user_pk.clone());
    status.account_public_key = Some(account_pk.clone());
    status.secret_name = Some(secret_name.clone());

    let claims = match user_claims(
        &user.name_any(),
        &user.spec,
        &user_pk,
        &account_pk,
        &signer.public_key(),
    ) {
        Ok(c) => c,
        Err(e) => return Ok(waiting("InvalidSpec", e.to_string())),
    };
    let (jwt, changed) = sign_if_changed(&claims, &signer, prev_jwt.as_deref(), ctx.unix_now())
        .map_err(|e| Error::Keys(e.to_string()))?;
    status.signing_key = Some(signer.public_key());
    if changed || live.is_none() {
        let creds =
            natrix_jwt::format_creds(&jwt, &seed).map_err(|e| Error::Keys(e.to_string()))?;
        let mut obj = secret(
            &secret_name,
            ns,
            "user-creds",
            user,
            [(CREDS_KEY.to_string(), ByteString(creds.into_bytes()))].into(),
        );
        obj.metadata
            .owner_references
            .iter_mut()
            .flatten()
            .for_each(|o| {
                o.controller = Some(true);
            });
        let mut value = serde_json::to_value(&obj).map_err(|e| Error::Keys(e.to_string()))?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        secrets
            .patch(
                &secret_name,
                &PatchParams::apply(names::FIELD_MANAGER).force(),
                &Patch::Apply(&value),
            )
            .await
            .map_err(kube_err(format!("apply Secret {secret_name}")))?;
        publish(
            ctx,
            user,
            EventType::Normal,
            "Issued",
            format!(
                "credentials for {user_pk} written to Secret {secret_name}, signed by {}",
                signer.public_key()
            ),
        )
        .await;
    }
    Ok(Outcome {
        ready: true,
        reason: "Issued".into(),
        message: format!("credentials in Secret {secret_name} (key {CREDS_KEY})"),
    })
}

/// Revokes the user in its Account before the User goes. Nothing to do when the Account
/// or its keys are gone (no server trusts the account any more) or the User never got a
/// key.
async fn revoke(ctx: &AccountsContext, user: &User, ns: &str) -> Result<(), Error> {
    let Some(pk) = user.status.as_ref().and_then(|s| s.public_key.clone()) else {
        return Ok(());
    };
    let keys_name = keys::account_secret(&user.spec.account_ref.name);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let at = ctx.unix_now().to_string();
    let patch = serde_json::json!({
        "data": { format!("{REVOKED_PREFIX}{pk}"): ByteString(at.into_bytes()) }
    });
    match secrets
        .patch(&keys_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            publish(
                ctx,
                user,
                EventType::Normal,
                "Revoked",
                format!(
                    "user {pk} revoked in Account {}; its connections close once the account JWT is pushed",
                    user.spec.account_ref.name
                ),
            )
            .await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_err(format!("revoke user in Secret {keys_name}"))(e)),
    }
}

/// One reconcile of one User.
pub async fn reconcile(user: Arc<User>, ctx: Arc<AccountsContext>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let span = crate::telemetry::start_asset_reconcile(
        "User",
        user.metadata.namespace.as_deref().unwrap_or(""),
        &user.name_any(),
        user.metadata.generation,
    );
    let result = reconcile_inner(&user, &ctx).await;
    let label = result.as_ref().err().map(Error::metric_label);
    ctx.metrics.observe_reconcile(started.elapsed(), label);
    crate::telemetry::finish(
        span,
        label.unwrap_or("ok"),
        result.as_ref().err().map(ToString::to_string),
    );
    result
}

async fn reconcile_inner(user: &User, ctx: &AccountsContext) -> Result<Action, Error> {
    let ns = user.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = user.finalizers().iter().any(|f| f == USER_FINALIZER);
    if user.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            revoke(ctx, user, &ns).await?;
            set_finalizer(&api, user, USER_FINALIZER, false).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        set_finalizer(&api, user, USER_FINALIZER, true).await?;
    }
    let previous = user.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let outcome = sync(ctx, user, &ns, &mut status).await?;
    let prev_ready = previous.conditions.iter().find(|c| c.type_ == "Ready");
    if !outcome.ready && prev_ready.map(|c| c.message.as_str()) != Some(outcome.message.as_str()) {
        publish(
            ctx,
            user,
            EventType::Warning,
            &outcome.reason,
            outcome.message.clone(),
        )
        .await;
    }
    let now = (ctx.now)();
    status.observed_generation = user.metadata.generation;
    status.conditions = vec![condition(
        "Ready",
        outcome.ready,
        &outcome.reason,
        outcome.message.clone(),
        user.metadata.generation,
        &previous.conditions,
        &now,
    )];
    let patch = serde_json::json!({ "status": status });
    match api
        .patch_status(
            &user.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(kube_err("update User status")(e)),
    }
    Ok(if outcome.ready {
        Action::await_change()
    } else {
        Action::requeue(REQUEUE_WAITING)
    })
}
