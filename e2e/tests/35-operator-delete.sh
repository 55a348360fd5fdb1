#!/usr/bin/env bash
# Deleting NatsClusters: everything the operator made for them (StatefulSet, client and
# headless Services, ConfigMap, PodDisruptionBudget, and through the StatefulSet the pods)
# goes away; JetStream claims follow deletionPolicy: deleted with `Delete`, kept with
# `Orphan`. The clusters with file storage have claims of a storage class nobody provides
# (this cluster has no provisioner): the claims exist, unbound, which is all deletion needs.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-delete
NS=$TEST_NS
install_operator "$NS"

natscluster "$NS" nats 3
STORE="  jetstream:
    enabled: true
    fileStorage: {size: 1Gi, storageClassName: e2e-unprovisioned}"
natscluster "$NS" wipe 1 "$STORE
  deletionPolicy: Delete"
natscluster "$NS" keep 1 "$STORE
  deletionPolicy: Orphan"
wait_until 180 "NatsCluster nats Ready" nc_ready "$NS" nats
claims() { kubectl -n "$NS" get pvc -o name 2>/dev/null | sort | tr '\n' ' '; }
both_claims() { [ "$(claims)" = "persistentvolumeclaim/data-keep-0 persistentvolumeclaim/data-wipe-0 " ]; }
wait_until 60 "the claims data-wipe-0 and data-keep-0" both_claims
# The claim of a Delete cluster is owned by its StatefulSet, so it goes with it.
wipe_owned() {
  kubectl -n "$NS" get pvc data-wipe-0 -o jsonpath='{.metadata.ownerReferences[*].kind}' | grep -q StatefulSet
}
wait_until 60 "data-wipe-0 owned by its StatefulSet (whenDeleted: Delete)" wipe_owned

OWNED=statefulsets,services,configmaps,poddisruptionbudgets,pods
owned() { kubectl -n "$NS" get "$OWNED" -l app.kubernetes.io/name=natrix -o name 2>/dev/null | sort; }
had=$(owned)
for o in statefulset.apps/nats service/nats service/nats-headless configmap/nats-config \
  poddisruptionbudget.policy/nats pod/nats-0 pod/nats-1 pod/nats-2 statefulset.apps/wipe pod/wipe-0; do
  grep -qxF "$o" <<<"$had" || fail "$o missing before the deletion; have: $had"
done

t0=$(now)
kubectl -n "$NS" delete natscluster nats wipe keep >/dev/null
nothing_left() { [ -z "$(owned)" ]; }
wait_until 120 "everything the NatsClusters owned deleted" nothing_left
gone_s=$(since "$t0")
only_kept() { [ "$(claims)" = "persistentvolumeclaim/data-keep-0 " ]; }
wait_until 60 "data-wipe-0 deleted and data-keep-0 kept" only_kept

echo "timing: kubectl delete of 3 NatsClusters -> StatefulSets, Services, ConfigMaps, PDBs and pods gone: ${gone_s}s"
echo "delete: $(wc -l <<<"$had") owned objects removed by the garbage collector; claim of deletionPolicy Delete removed, of Orphan kept"
