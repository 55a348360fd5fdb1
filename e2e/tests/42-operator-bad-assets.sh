#!/usr/bin/env bash
# Bad input to the JetStream and tenant resources, each reported in status in words while
# everything else keeps working: a Stream for a NatsCluster that does not exist; a Stream
# whose name clashes with a stream made by hand with the nats CLI (never updated or
# deleted by the operator); two Accounts importing from each other (a cycle); a User with
# a subject the server would refuse. A good Stream beside them stays Ready throughout,
# and the hand-made stream keeps its messages.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-badassets
NS=$TEST_NS
install_operator "$NS"
before_exit "kubectl -n '$NS' delete streams,users,accounts --all --wait --timeout=60s >/dev/null 2>&1 || true"

natscluster "$NS" bad 1 "  jetstream:
    enabled: true
    memoryStorage: {size: 128Mi}"
wait_until 180 "NatsCluster bad Ready" nc_ready "$NS" bad
URL="nats://bad.$NS.svc.cluster.local:4222"

# reason KIND NAME: the Ready condition's "status reason message".
reason() {
  kubectl -n "$NS" get "$1" "$2" -o \
    jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason} {.status.conditions[?(@.type=="Ready")].message}'
}
# says KIND NAME PATTERN: Ready is False and "reason message" matches PATTERN.
says() { reason "$1" "$2" | grep -qE "^False $3"; }

# A hand-made stream, before any resource names it.
natscli_job "$NS" hand-add "[\"--server\", \"$URL\", \"stream\", \"add\", \"handmade\", \"--subjects\", \"hand.>\", \"--storage\", \"memory\", \"--defaults\"]" 60 2
kubectl -n "$NS" wait --for=condition=Complete job/hand-add --timeout=90s >/dev/null ||
  fail "nats stream add handmade: $(kubectl -n "$NS" logs job/hand-add 2>&1 | tail -n 5)"
natscli_job "$NS" hand-pub "[\"--server\", \"$URL\", \"pub\", \"hand.x\", \"m\", \"--count\", \"7\"]" 60 2
kubectl -n "$NS" wait --for=condition=Complete job/hand-pub --timeout=90s >/dev/null ||
  fail "nats pub hand.x: $(kubectl -n "$NS" logs job/hand-pub 2>&1 | tail -n 5)"

kubectl -n "$NS" apply -f - >/dev/null <<YAML || fail "the resources were refused by the API server"
apiVersion: natrix.io/v1alpha1
kind: Stream
metadata: {name: good}
spec: {natsClusterRef: {name: bad}, name: good, subjects: ["good.>"], storage: memory}
---
apiVersion: natrix.io/v1alpha1
kind: Stream
metadata: {name: orphan}
spec: {natsClusterRef: {name: nowhere}, name: orphan, storage: memory}
---
apiVersion: natrix.io/v1alpha1
kind: Stream
metadata: {name: handmade}
spec: {natsClusterRef: {name: bad}, name: handmade, subjects: ["hand.>"], storage: memory, maxAge: 1h}
YAML
ready_stream() { [ "$(reason stream good | cut -d' ' -f1)" = True ]; }
wait_until 60 "stream good Ready" ready_stream
wait_until 60 "stream orphan: ClusterNotFound" says stream orphan "ClusterNotFound NatsCluster $NS/nowhere does not exist"
wait_until 60 "stream handmade: NameClash" says stream handmade "NameClash "
echo "stream orphan: $(reason stream orphan)"
echo "stream handmade: $(reason stream handmade)"

# Tenants, on a cluster of their own (Accounts move it to operator mode): an import cycle
# (each account re-exports what it imports from the other under the same subject, so
# messages on q.> would circle; imports of subjects the other does not deliver back are
# no cycle) and a bad subject.
natscluster "$NS" tenants 1
kubectl -n "$NS" apply -f - >/dev/null <<YAML || fail "the Accounts and User were refused by the API server"
apiVersion: natrix.io/v1alpha1
kind: Account
metadata: {name: ping}
spec:
  natsClusterRef: {name: tenants}
  exports: [{name: a, subject: "q.>"}]
  imports: [{accountRef: {name: pong}, subject: "q.>"}]
---
apiVersion: natrix.io/v1alpha1
kind: Account
metadata: {name: pong}
spec:
  natsClusterRef: {name: tenants}
  exports: [{name: b, subject: "q.>"}]
  imports: [{accountRef: {name: ping}, subject: "q.>"}]
---
apiVersion: natrix.io/v1alpha1
kind: Account
metadata: {name: fine}
spec:
  natsClusterRef: {name: tenants}
---
apiVersion: natrix.io/v1alpha1
kind: User
metadata: {name: sloppy}
spec:
  accountRef: {name: fine}
  permissions:
    subscribe: {allow: ["orders.>.x"]}
YAML
wait_until 90 "account ping: ImportCycle" says account ping "ImportCycle .*cycle"
wait_until 90 "user sloppy: InvalidSpec" says user sloppy "InvalidSpec .*orders\.>\.x"
echo "account ping: $(reason account ping)"
echo "user sloppy: $(reason user sloppy)"

# Nothing else disturbed: the good stream is still Ready and the hand-made stream still
# has its messages and its own settings (max age unset, not the resource's 1h).
ready_stream || fail "stream good lost Ready: $(reason stream good)"
natscli_job "$NS" hand-info "[\"--server\", \"$URL\", \"stream\", \"info\", \"handmade\", \"--json\"]" 60 2
kubectl -n "$NS" wait --for=condition=Complete job/hand-info --timeout=90s >/dev/null ||
  fail "nats stream info handmade: $(kubectl -n "$NS" logs job/hand-info 2>&1 | tail -n 5)"
info=$(kubectl -n "$NS" logs job/hand-info)
grep -q '"messages": 7' <<<"$info" || fail "stream handmade lost messages: $info"
grep -q '"max_age": 0' <<<"$info" || fail "stream handmade was changed by the operator: $info"
echo "bad input: ClusterNotFound, NameClash, ImportCycle, InvalidSpec reported in status; stream good Ready; hand-made stream untouched"
