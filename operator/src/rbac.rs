//! The permissions the operator uses, in one place. The Helm chart's and the kustomize
//! base's RBAC are checked against these rules by a test, so granting less breaks the
//! build instead of a reconcile, and granting more needs a reason here.

use k8s_openapi::api::rbac::v1::PolicyRule;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let v = |xs: &[&str]| xs.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        verbs: v(verbs),
        ..PolicyRule::default()
    }
}

/// Cluster-wide rules (NatsClusters live in any namespace). `install_crds` adds the CRD
/// permissions the start-up CRD apply needs.
pub fn cluster_rules(install_crds: bool) -> Vec<PolicyRule> {
    let mut rules = vec![
        // Watched, read; the spec is the user's.
        rule(&["natrix.io"], &["natsclusters"], &["get", "list", "watch"]),
        rule(
            &["natrix.io"],
            &["natsclusters/status"],
            &["get", "patch", "update"],
        ),
        // Owned objects: applied, watched, deleted (a disabled PDB, a StatefulSet
        // recreated for new volume claim templates).
        rule(
            &[""],
            &["configmaps", "services"],
            &[
                "get", "list", "watch", "create", "patch", "update", "delete",
            ],
        ),
        rule(
            &["apps"],
            &["statefulsets"],
            &[
                "get", "list", "watch", "create", "patch", "update", "delete",
            ],
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets"],
            &[
                "get", "list", "watch", "create", "patch", "update", "delete",
            ],
        ),
        // Pods: listed to ask each one for its config digest; patched (an annotation)
        // to make the kubelet refresh the config volume of a pod behind on a reload.
        rule(&[""], &["pods"], &["get", "list", "watch", "patch"]),
        // Claims: grown in place when fileStorage.size grows.
        rule(&[""], &["persistentvolumeclaims"], &["get", "patch"]),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        rule(
            &["monitoring.coreos.com"],
            &["servicemonitors"],
            &["get", "create", "patch"],
        ),
        // cert-manager Certificates named by TLS listeners: read for their Secret name.
        rule(&["cert-manager.io"], &["certificates"], &["get"]),
        // JetStream assets: watched; patched only to add and remove the finalizer.
        rule(
            &["natrix.io"],
            &["streams", "consumers", "keyvalues", "objectstores"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(
            &["natrix.io"],
            &[
                "streams/status",
                "consumers/status",
                "keyvalues/status",
                "objectstores/status",
            ],
            &["get", "patch", "update"],
        ),
        // Secrets named by an asset's credentialsSecret: read to connect as that user.
        // Operator mode: the operator and account key Secrets and the users' `.creds`
        // Secrets are created, patched (new signing keys, revocations) and watched (a
        // revocation written into an account's keys wakes the Account reconciler).
        rule(
            &[""],
            &["secrets"],
            &["get", "list", "watch", "create", "patch"],
        ),
        // Account and User resources: watched; patched only for their finalizers.
        rule(
            &["natrix.io"],
            &["accounts", "users"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(
            &["natrix.io"],
            &["accounts/status", "users/status"],
            &["get", "patch", "update"],
        ),
    ];
    if install_crds {
        rules.push(rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["get", "list", "watch", "create", "patch"],
        ));
    }
    rules
}

/// Rules in the operator's own namespace: the leader Lease.
pub fn lease_rules() -> Vec<PolicyRule> {
    vec![rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "update"],
    )]
}
