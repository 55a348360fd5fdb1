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
//! revocation, and the servers close the user's connections. A permission change does the
//! same for the credentials issued before the new ones (step 5 is then followed by that
//! `PATCH` and its event), so the old permissions stop working at once.

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
    // Keep the user's key unless its current credentials are revoked (a User deleted and
    // made again while its old Secret waits for garbage collection). A revocation older
    // than those credentials is one of a permission change, and leaves the key alone.
    let (seed, prev_jwt) = match previous {
        Some((seed, jwt))
            if natrix_jwt::nkeys::KeyPair::from_seed(&seed).is_ok_and(|kp| {
                let issued = natrix_jwt::decode_user(&jwt).map_or(0, |c| c.data.issued_at);
                akeys
                    .revoked
                    .get(&kp.public_key())
                    .is_none_or(|at| *at < issued)
            }) =>
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
    // New permissions must not leave the old ones usable: the earlier credentials are
    // revoked (user key, issued at or before the new token's `iat - 1`), so the servers
    // close the connections that use them once the account JWT is pushed. A re-issue by
    // another signing key alone (a rotation) revokes nothing.
    let earlier = prev_jwt
        .as_deref()
        .and_then(|j| natrix_jwt::decode_user(j).ok())
        .filter(|p| p.nats.permission_limits != claims.nats.permission_limits)
        .map(|p| p.data.issued_at);
    let now = match earlier {
        Some(issued) => ctx.unix_now().max(issued + 1),
        None => ctx.unix_now(),
    };
    let (jwt, changed) = sign_if_changed(&claims, &signer, prev_jwt.as_deref(), now)
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
        if earlier.is_some() {
            revoke(ctx, user, ns, &user_pk, Revocation::Before { issued: now }).await?;
        }
    }
    Ok(Outcome {
        ready: true,
        reason: "Issued".into(),
        message: format!("credentials in Secret {secret_name} (key {CREDS_KEY})"),
    })
}

/// Why a user's credentials are revoked.
enum Revocation {
    /// The User is deleted: every JWT of its key, issued up to now.
    Deleted,
    /// Its permissions changed: the JWTs issued before the new one (`issued`), which
    /// carry the old permissions.
    Before { issued: i64 },
}

/// Records a revocation of the user's key in its Account's key Secret; that change wakes
/// the Account reconciler, whose push makes the servers close the connections concerned.
/// Nothing to do when the Account's keys are gone (no server trusts the account any
/// more).
async fn revoke(
    ctx: &AccountsContext,
    user: &User,
    ns: &str,
    pk: &str,
    why: Revocation,
) -> Result<(), Error> {
    let account = &user.spec.account_ref.name;
    let keys_name = keys::account_secret(account);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let (at, reason, message) = match why {
        Revocation::Deleted => (
            ctx.unix_now(),
            "Revoked",
            format!(
                "user {pk} revoked in Account {account}; its connections close once the account JWT is pushed"
            ),
        ),
        Revocation::Before { issued } => (
            issued - 1,
            "EarlierCredentialsRevoked",
            format!(
                "credentials of {pk} issued before the permission change are revoked in Account {account}; connections using them close once the account JWT is pushed"
            ),
        ),
    };
    let patch = serde_json::json!({
        "data": { format!("{REVOKED_PREFIX}{pk}"): ByteString(at.to_string().into_bytes()) }
    });
    match secrets
        .patch(&keys_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            publish(ctx, user, EventType::Normal, reason, message).await;
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
            // A User that never got a key has nothing to revoke.
            if let Some(pk) = user.status.as_ref().and_then(|s| s.public_key.clone()) {
                revoke(ctx, user, &ns, &pk, Revocation::Deleted).await?;
            }
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
