//! Leader election against a scripted API server: create when absent, renew our own Lease,
//! stand by while another holder is fresh, take over an expired Lease, and lose a race
//! on conflict.

mod common;

use std::time::Duration;

use common::mockapi::{failure, not_found, serve, step};
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use natrix_operator::leader::{LeaderElector, Round};
use serde_json::{Value, json};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/sys/leases/natrix-operator";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/sys/leases";

fn lease(holder: &str, renew: &str, transitions: i32) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "natrix-operator", "namespace": "sys", "resourceVersion": "42"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                    "renewTime": renew, "acquireTime": renew, "leaseTransitions": transitions}})
}

fn now() -> Timestamp {
    "2026-11-25T03:00:00Z".parse().unwrap()
}

fn elector(client: kube::Client, me: &str) -> LeaderElector {
    let api: Api<Lease> = Api::namespaced(client, "sys");
    LeaderElector::new(api, "natrix-operator", me, Duration::from_secs(15))
}

#[tokio::test]
async fn creates_the_lease_when_absent() {
    let (client, server) = serve(vec![
        step(Method::GET, LEASE, 404, Some(not_found("lease"))),
        step(Method::POST, LEASES, 201, None),
    ]);
    assert_eq!(
        elector(client, "me")
            .try_acquire_or_renew(now())
            .await
            .unwrap(),
        Round::Leading
    );
    let seen = server.await.unwrap();
    let spec = &seen[1].body["spec"];
    assert_eq!(spec["holderIdentity"], "me");
    assert_eq!(spec["leaseDurationSeconds"], 15);
    assert_eq!(spec["leaseTransitions"], 0);
}

#[tokio::test]
async fn renews_its_own_lease_with_the_read_resource_version() {
    let (client, server) = serve(vec![
        step(
            Method::GET,
            LEASE,
            200,
            Some(lease("me", "2026-11-25T02:59:55.000000Z", 3)),
        ),
        step(Method::PUT, LEASE, 200, None),
    ]);
    assert_eq!(
        elector(client, "me")
            .try_acquire_or_renew(now())
            .await
            .unwrap(),
        Round::Leading
    );
    let seen = server.await.unwrap();
    let body = &seen[1].body;
    assert_eq!(body["metadata"]["resourceVersion"], "42");
    assert_eq!(body["spec"]["holderIdentity"], "me");
    assert_eq!(
        body["spec"]["leaseTransitions"], 3,
        "a renewal is no transition"
    );
    assert_eq!(body["spec"]["renewTime"], "2026-11-25T03:00:00.000000Z");
    assert_eq!(body["spec"]["acquireTime"], "2026-11-25T02:59:55.000000Z");
}

#[tokio::test]
async fn follows_while_another_holder_is_fresh() {
    let (client, server) = serve(vec![step(
        Method::GET,
        LEASE,
        200,
        Some(lease("other", "2026-11-25T02:59:50.000000Z", 1)),
    )]);
    assert_eq!(
        elector(client, "me")
            .try_acquire_or_renew(now())
            .await
            .unwrap(),
        Round::Following
    );
    server.await.unwrap();
}

#[tokio::test]
async fn takes_over_an_expired_lease() {
    let (client, server) = serve(vec![
        step(
            Method::GET,
            LEASE,
            200,
            Some(lease("other", "2026-11-25T02:59:40.000000Z", 1)),
        ),
        step(Method::PUT, LEASE, 200, None),
    ]);
    assert_eq!(
        elector(client, "me")
            .try_acquire_or_renew(now())
            .await
            .unwrap(),
        Round::Leading
    );
    let seen = server.await.unwrap();
    let spec = &seen[1].body["spec"];
    assert_eq!(spec["holderIdentity"], "me");
    assert_eq!(spec["leaseTransitions"], 2);
    assert_eq!(spec["acquireTime"], "2026-11-25T03:00:00.000000Z");
}

#[tokio::test]
async fn loses_a_race_on_conflict() {
    let (client, server) = serve(vec![
        step(
            Method::GET,
            LEASE,
            200,
            Some(lease("other", "2026-11-25T02:00:00.000000Z", 1)),
        ),
        step(Method::PUT, LEASE, 409, Some(failure(409, "Conflict"))),
    ]);
    assert_eq!(
        elector(client, "me")
            .try_acquire_or_renew(now())
            .await
            .unwrap(),
        Round::Following
    );
    server.await.unwrap();
}

#[tokio::test]
async fn other_errors_are_errors() {
    let (client, server) = serve(vec![step(
        Method::GET,
        LEASE,
        403,
        Some(failure(403, "Forbidden")),
    )]);
    assert!(
        elector(client, "me")
            .try_acquire_or_renew(now())
            .await
            .is_err()
    );
    server.await.unwrap();
}
