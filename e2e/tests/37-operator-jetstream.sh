#!/usr/bin/env bash
# JetStream assets through the operator: the NACK-shaped examples in
# deploy/examples/jetstream/ (Stream, two Consumers, KeyValue, ObjectStore) applied to a
# 3-replica NatsCluster with JetStream, checked with the `nats` CLI in the cluster; a
# mutable field changed with kubectl reaches the server; an immutable one is refused by
# the API server; a hand edit with `nats stream edit` is put back; a spec the server
# refuses shows the server's words in status; the KV and object store buckets work with
# `nats kv` and `nats object`; deleting removes a stream, except with preventDelete.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-js
NS=$TEST_NS
install_operator "$NS"
# The assets' finalizers need the operator: delete them before it is uninstalled, or the
# namespace would wait for it forever.
# shellcheck disable=SC2064 # expanded now, on purpose: NS is fixed for this trap
trap "kubectl -n '$NS' delete streams,consumers,keyvalues,objectstores --all --wait --timeout=60s >/dev/null 2>&1 || true; helm uninstall natrix -n '$NS' --wait --timeout 60s >/dev/null 2>&1 || true; kubectl delete namespace '$NS' --wait=false >/dev/null 2>&1 || true" EXIT

natscluster "$NS" js 3 "  jetstream:
    enabled: true
    memoryStorage: {size: 256Mi}"
wait_until 180 "NatsCluster js Ready" nc_ready "$NS" js
URL="nats://js.$NS.svc.cluster.local:4222"

# nats_job NAME ARGS...: runs the nats CLI against the cluster in the Job NAME (unique per
# call: it is usually called in a subshell, so no counter could make it so), waits for it
# and prints its output (two more tries within the deadline: a fresh Service can miss a
# pod).
nats_job() {
  local name=$1 args
  shift
  args=$(printf '"%s",' --server "$URL" "$@")
  natscli_job "$NS" "nats-$name" "[${args%,}]" 60 2
  kubectl -n "$NS" wait --for=condition=Complete "job/nats-$name" --timeout=60s >/dev/null ||
    fail "nats $* did not complete: $(kubectl -n "$NS" logs "job/nats-$name" 2>&1 | tail -n 5)"
  kubectl -n "$NS" logs "job/nats-$name"
}

# ready KIND NAME: the resource's Ready condition is True for its current generation.
ready() { cr_ready "$NS" "$1" "$2"; }

t0=$(now)
kubectl -n "$NS" apply -f "$ROOT/deploy/examples/jetstream/" >/dev/null ||
  fail "kubectl apply of deploy/examples/jetstream refused"
for r in stream/orders consumer/orders-processor consumer/orders-audit keyvalue/settings objectstore/assets; do
  wait_until 90 "$r Ready" ready "${r%/*}" "${r#*/}"
done
created_s=$(since "$t0")
echo "--- kubectl get (printer columns)"
kubectl -n "$NS" get streams,consumers,keyvalues,objectstores

info=$(nats_job stream-info-1 stream info orders --json)
grep -q '"num_replicas": 3' <<<"$info" || fail "stream orders is not R3: $info"
grep -q '"max_age": 3600000000000' <<<"$info" || fail "stream orders max_age is not 1h: $info"

# A mutable field, changed with kubectl, is on the server once Ready says so.
t1=$(now)
kubectl -n "$NS" patch stream orders --type merge -p '{"spec":{"maxAge":"2h"}}' >/dev/null
wait_until 60 "stream orders Ready for the new generation" ready stream orders
update_s=$(since "$t1")
info=$(nats_job stream-info-2 stream info orders --json)
grep -q '"max_age": 7200000000000' <<<"$info" || fail "max_age 2h not on the server: $info"

# An immutable field is refused by the API server.
out=$(kubectl -n "$NS" patch stream orders --type merge -p '{"spec":{"storage":"file"}}' 2>&1) &&
  fail "storage change accepted: $out"
grep -q "storage is immutable" <<<"$out" || fail "storage change refused without the reason: $out"
out=$(kubectl -n "$NS" patch consumer orders-processor --type merge -p '{"spec":{"ackPolicy":"none"}}' 2>&1) &&
  fail "ackPolicy change accepted: $out"
grep -q "ackPolicy can not be updated" <<<"$out" || fail "ackPolicy change refused without the reason: $out"

# A hand edit on the server is put back by the periodic check (every 30 s).
t2=$(now)
nats_job edit stream edit orders --max-age=10m -f >/dev/null
corrected() { kubectl -n "$NS" get events --field-selector reason=DriftCorrected -o name | grep -q .; }
wait_until 90 "the hand edit of stream orders put back (event DriftCorrected)" corrected
drift_s=$(since "$t2")
info=$(nats_job stream-info-3 stream info orders --json)
grep -q '"max_age": 7200000000000' <<<"$info" || fail "max_age not put back to 2h: $info"

# A spec the server refuses: its words in the status.
kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: natrix.io/v1alpha1
kind: Stream
metadata:
  name: bad
spec:
  natsClusterRef: {name: js}
  name: bad
  storage: memory
  maxAge: 1m
  duplicateWindow: 2m
YAML
refused() {
  kubectl -n "$NS" get stream bad -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason} {.status.conditions[?(@.type=="Ready")].message}' |
    grep -q '^Refused .*duplicates window can not be larger then max age'
}
wait_until 60 "stream bad Refused with the server's message" refused
kubectl -n "$NS" get stream bad -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}'
echo

# The consumer, the KV bucket and the object store work with the nats CLI.
nats_job pub pub orders.received hello --count 5 >/dev/null
cinfo=$(nats_job consumer-info consumer info orders processor --json)
grep -q '"num_pending": 5' <<<"$cinfo" || fail "consumer processor does not see the 5 messages: $cinfo"
nats_job kv-put kv put settings color blue >/dev/null
got=$(nats_job kv-get kv get settings color --raw)
[ "$got" = blue ] || fail "kv get settings color: $got"
nats_job object-put object put assets /etc/hosts --name hosts -f >/dev/null
objs=$(nats_job object-ls object ls assets)
grep -q hosts <<<"$objs" || fail "object hosts not in assets: $objs"

# Delete: the bucket goes from the server; a stream with preventDelete stays.
kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: natrix.io/v1alpha1
kind: Stream
metadata:
  name: keep
spec:
  natsClusterRef: {name: js}
  name: keep
  storage: memory
  preventDelete: true
YAML
wait_until 60 "stream keep Ready" ready stream keep
kubectl -n "$NS" delete keyvalue/settings stream/keep --wait --timeout=60s >/dev/null ||
  fail "deleting keyvalue settings and stream keep did not finish"
names=$(nats_job stream-ls stream ls --names)
grep -qx KV_settings <<<"$names" && fail "KV_settings still on the server after kubectl delete: $names"
grep -qx keep <<<"$names" || fail "stream keep (preventDelete) gone from the server: $names"
grep -qx orders <<<"$names" || fail "stream orders missing: $names"

echo "timing: examples applied -> all 5 Ready: ${created_s}s; maxAge patch -> on the server: ${update_s}s; hand edit -> put back: ${drift_s}s"
echo "jetstream: R3 stream, pull and push consumers, KV and object store from NACK-shaped examples; immutable fields refused at apply; server refusal in status; drift corrected; delete honours preventDelete"
