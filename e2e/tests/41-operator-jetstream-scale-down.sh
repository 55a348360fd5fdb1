#!/usr/bin/env bash
# A JetStream cluster scaled down in operator mode: the operator takes the leaving server
# out of the meta group ($JS.API.SERVER.REMOVE as its system user) and keeps the pod
# until its stream replicas have moved; then the StatefulSet shrinks. Two R2 streams on
# three servers (one of them certainly on the leaving server) keep every message, the
# meta group ends with two servers, and the NatsCluster's status says so.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-shrink
NS=$TEST_NS
install_operator "$NS"
before_exit "kubectl -n '$NS' delete users,accounts --all --wait --timeout=60s >/dev/null 2>&1 || true"

natscluster "$NS" shrink 3 "  jetstream:
    enabled: true
    memoryStorage: {size: 256Mi}"
kubectl -n "$NS" apply -f - >/dev/null <<YAML || fail "Account and User refused by the API server"
apiVersion: natrix.io/v1alpha1
kind: Account
metadata: {name: app}
spec:
  natsClusterRef: {name: shrink}
  jetstream: {memoryStorage: 128Mi}
---
apiVersion: natrix.io/v1alpha1
kind: User
metadata: {name: app-user}
spec:
  accountRef: {name: app}
YAML
ready() { cr_ready "$NS" "$1" "$2"; }
wait_until 240 "user app-user Ready" ready user app-user
wait_until 240 "NatsCluster shrink Ready in operator mode" nc_ready "$NS" shrink
URL="nats://shrink.$NS.svc.cluster.local:4222"

# nats_as NAME SECONDS ARGS...: the nats CLI as app-user, in a Job; prints its output.
nats_as() {
  local name=$1 secs=$2
  shift 2
  CREDS_JOB_RETRIES=2 creds_job "$name" app-user "$secs" "$@"
  kubectl -n "$NS" wait --for=condition=Complete "job/$name" --timeout="${secs}s" >/dev/null ||
    fail "nats $* did not complete: $(kubectl -n "$NS" logs "job/$name" 2>&1 | tail -n 5)"
  kubectl -n "$NS" logs "job/$name"
}

for s in one two; do
  nats_as "add-$s" 60 stream add "$s" --subjects "$s.>" --replicas 2 --storage memory --defaults >/dev/null
  nats_as "pub-$s" 60 pub "$s.x" "m{{Count}}" --count 20 >/dev/null
done
meta_size() { kubectl -n "$NS" get nc shrink -o jsonpath='{.status.jetstream.metaClusterSize}'; }
wait_until 60 "status.jetstream.metaClusterSize 3" sh -c "[ \"\$(kubectl -n '$NS' get nc shrink -o jsonpath='{.status.jetstream.metaClusterSize}')\" = 3 ]"
held_on_2=$(monitor "$NS" shrink-2 'jsz' | json_field streams)
echo "streams with a replica on shrink-2 before the scale-down: $held_on_2"

t0=$(now)
kubectl -n "$NS" patch nc shrink --type merge -p '{"spec":{"replicas":2}}' >/dev/null
shrunk() {
  [ "$(kubectl -n "$NS" get sts shrink -o jsonpath='{.status.replicas}')" = 2 ] &&
    ! kubectl -n "$NS" get pod shrink-2 >/dev/null 2>&1
}
wait_until 180 "StatefulSet shrink down to 2 pods" shrunk
shrink_s=$(since "$t0")
wait_until 120 "NatsCluster shrink Ready with 2 servers" nc_ready "$NS" shrink
[ "$(meta_size)" = 2 ] || fail "meta group size after the scale-down: $(meta_size)"
kubectl -n "$NS" get events --field-selector reason=ScaledDown -o name | grep -q . ||
  fail "no ScaledDown event: $(kubectl -n "$NS" get events -o wide | tail -n 20)"
for s in one two; do
  info=$(nats_as "info-$s" 60 stream info "$s" --json)
  grep -q '"messages": 20' <<<"$info" || fail "stream $s lost messages in the scale-down: $info"
  grep -q '"shrink-2"' <<<"$info" && fail "stream $s still has a replica on shrink-2: $info"
done
kubectl -n "$NS" get nc shrink
echo "timing: spec.replicas 3 -> 2 -> shrink-2 gone after its streams moved: ${shrink_s}s"
echo "jetstream scale-down: SERVER.REMOVE by the operator, $held_on_2 stream replicas moved off shrink-2, 40 messages kept, meta group of 2"
