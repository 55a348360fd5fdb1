#!/usr/bin/env bash
# Scaling through the NatsCluster's scale subresource (`kubectl scale nc`), 3 -> 5 -> 3:
# pods 3 and 4 appear and every pod's /routez shows a route to each of the others; the
# original pods keep running (the route list reloads); scaling down drains the leaving
# pods (each logs lame-duck mode before it goes) and the remaining routes settle. Prints
# the seconds of each step.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-scale
NS=$TEST_NS
install_operator "$NS"

# restart_counts: each pod's container restart count, in pod-name order.
restart_counts() {
  kubectl -n "$NS" get pods -l app.kubernetes.io/instance=nats --sort-by=.metadata.name \
    -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}'
}

# replaced WHEN: fail with what differs (names, UIDs, creation times, template revisions).
replaced() {
  echo "pods before: $before" >&2
  kubectl -n "$NS" get pods -l app.kubernetes.io/instance=nats -o \
    jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.metadata.creationTimestamp} {.metadata.labels.controller-revision-hash} {.metadata.deletionTimestamp}{"\n"}{end}' >&2 || true
  fail "pods 0-2 were replaced when $1"
}

natscluster "$NS" nats 3
wait_until 180 "NatsCluster Ready" nc_ready "$NS" nats
before=$(pods_of "$NS" nats)
restarts_before=$(restart_counts)

# routes_settled N: exactly N pods exist (none of the leaving ones still terminating: the
# StatefulSet's Parallel policy may remove nats-3 before nats-4) and pods 0..N-1 each
# route to the N-1 others.
routes_settled() {
  local n=$1 i r
  [ "$(pods_of "$NS" nats | wc -l)" = "$n" ] || return 1
  for i in $(seq 0 $((n - 1))); do
    r=$(monitor "$NS" "nats-$i" routez 2>/dev/null | json_field num_routes)
    [ "$r" = $((n - 1)) ] || return 1
  done
}
routes_settled 3 || fail "3 pods do not route to each other before scaling"
[ "$restarts_before" = "0 0 0 " ] || fail "containers restarted before scaling: $restarts_before"

t0=$(now)
kubectl -n "$NS" scale natscluster/nats --replicas=5 >/dev/null
wait_until 180 "NatsCluster Ready with 5 replicas" nc_ready "$NS" nats
wait_until 60 "every one of 5 pods routing to the 4 others" routes_settled 5
up_s=$(since "$t0")
[ "$(kubectl -n "$NS" get nc nats -o jsonpath='{.status.replicas}')" = 5 ] ||
  fail "status.replicas is not 5"
[ "$(pods_of "$NS" nats | head -n3)" = "$before" ] || replaced "scaling up"

t1=$(now)
kubectl -n "$NS" scale natscluster/nats --replicas=3 >/dev/null
# Each leaving pod must enter lame-duck mode (the preStop hook) before it goes.
declare -A drained=()
deadline=$(($(date +%s) + 120))
while [ ${#drained[@]} -lt 2 ]; do
  for p in nats-3 nats-4; do
    [ -n "${drained[$p]:-}" ] && continue
    log=$(kubectl -n "$NS" logs "$p" 2>/dev/null || true)
    if grep -q 'Entering lame duck mode' <<<"$log"; then
      drained[$p]=$(since "$t1")
    elif ! kubectl -n "$NS" get pod "$p" >/dev/null 2>&1; then
      fail "$p went away without entering lame-duck mode"
    fi
  done
  [ "$(date +%s)" -lt "$deadline" ] || fail "pods 3 and 4 did not enter lame-duck mode within 120s"
  sleep 0.5
done
wait_until 120 "NatsCluster Ready with 3 replicas" nc_ready "$NS" nats
wait_until 120 "pods 3 and 4 gone and 3 pods routing to the 2 others" routes_settled 3
down_s=$(since "$t1")
[ "$(pods_of "$NS" nats)" = "$before" ] || replaced "scaling down"
restarts=$(restart_counts)
[ "$restarts" = "0 0 0 " ] || fail "containers restarted while scaling: $restarts"

echo "timing: scale 3 -> 5 (kubectl scale nc) -> NatsCluster Ready and all 5 pods routing to 4 peers: ${up_s}s"
echo "timing: scale 5 -> 3 -> pods 3 and 4 drained and gone, 3 pods routing to 2 peers: ${down_s}s (lame duck entered after: nats-3 ${drained[nats-3]}s, nats-4 ${drained[nats-4]}s)"
echo "scale: 3 -> 5 -> 3 with pods 0-2 untouched (same UIDs, 0 restarts)"
