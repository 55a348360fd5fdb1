#!/usr/bin/env bash
# Two NatsClusters in different namespaces joined by gateways. The link is named on one
# side only (east names west); the operator renders it on both. Every pod of each cluster
# holds an outbound gateway to the other with every account interest-only, and a request
# from a client of east, through east's Service, is answered by a service attached to
# west.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-gw
NS=$TEST_NS
WEST_NS=natrix-op-gw-west
kubectl delete namespace "$WEST_NS" --ignore-not-found --wait=true --timeout=60s >/dev/null
kubectl create namespace "$WEST_NS" >/dev/null
install_operator "$NS"
# On failure, west's state too.
fail() {
  echo "FAIL: $*" >&2
  dump "$WEST_NS"
  dump "$NS"
  exit 1
}
# install_operator's cleanup, plus the second namespace.
trap "helm uninstall natrix -n '$NS' --wait --timeout 60s >/dev/null 2>&1 || true; kubectl delete namespace '$NS' '$WEST_NS' --wait=false >/dev/null 2>&1 || true" EXIT

t0=$(now)
# east first: west's first config then already holds the link east declared (the other
# order works too, but west rolls once to pick it up).
natscluster "$NS" east 2 "  gateways:
    remotes:
      - natsCluster: {name: west, namespace: $WEST_NS}"
natscluster "$WEST_NS" west 2 "  gateways: {}"
wait_until 240 "NatsCluster west Ready" nc_ready "$WEST_NS" west
wait_until 240 "NatsCluster east Ready" nc_ready "$NS" east
for c in "$NS east" "$WEST_NS west"; do
  set -- $c
  kubectl -n "$1" rollout status "statefulset/$2" --timeout=180s >/dev/null ||
    fail "StatefulSet $2 did not settle"
done
ready_s=$(since "$t0")

# linked NS POD REMOTE: the pod has an outbound gateway to REMOTE, $G interest-only.
linked() {
  local z
  z=$(monitor "$1" "$2" "gatewayz?accs=1&gw_name=$3" 2>/dev/null) || return 1
  grep -q "\"$3\"" <<<"$z" && grep -q '"interest_mode": "Interest-Only"' <<<"$z"
}
for i in 0 1; do
  wait_until 120 "east-$i gateway to west" linked "$NS" "east-$i" west
  wait_until 120 "west-$i gateway to east" linked "$WEST_NS" "west-$i" east
done
linked_s=$(since "$t0")

natscli_job "$WEST_NS" responder "[\"--server\", \"nats://west.$WEST_NS.svc.cluster.local:4222\", \"reply\", \"svc.time\", \"answered by west\", \"--count\", \"1\"]" 120
# The service's interest (natscli replies in a queue group, so `svc.time <group>`)
# reaches east's pods over the gateways.
wants() {
  local i
  for i in 0 1; do
    monitor "$NS" "east-$i" "gatewayz?accs=1&subs=1&gw_name=west&acc_name=%24G" 2>/dev/null |
      grep -q '"svc.time ' || return 1
  done
}
wait_until 90 "east learning west's interest in svc.time" wants

natscli_job "$NS" requester "[\"--server\", \"nats://east.$NS.svc.cluster.local:4222\", \"request\", \"svc.time\", \"what time\", \"--timeout\", \"10s\"]"
kubectl -n "$NS" wait --for=condition=Complete job/requester --timeout=60s >/dev/null ||
  fail "the requester in east got no answer: $(kubectl -n "$NS" logs job/requester 2>&1 | tail -5)"
out=$(kubectl -n "$NS" logs job/requester)
grep -q 'answered by west' <<<"$out" || fail "requester output: $out"
echo "operator gateways: east and west Ready in ${ready_s}s, gateways linked both ways in ${linked_s}s, a request from east answered by west"
