#!/usr/bin/env bash
# Bad input on a running 3-replica NatsCluster:
# - specs the API server refuses (schema and CEL): replicas -1, a lame-duck duration
#   below 30s, a plain-text password, and on a second NatsCluster with file storage a
#   storage class change, a smaller volume and removing fileStorage; the refused applies
#   change nothing (same generation);
# - a config natrix-server would refuse (`config.merge: {max_payload: lots}`): reported as
#   Degraded/InvalidConfig with natrix-server's nats.conf:line:col message and a Warning
#   event, while the ConfigMap, the StatefulSet and the pods (same UIDs, same config
#   digest) stay as they were;
# - the operator survives a restart of kube-apiserver (`e2e/cluster restart`) and
#   resumes: the fixed spec given after the restart reaches every pod live.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-bad
NS=$TEST_NS
install_operator "$NS"

natscluster "$NS" nats 3
wait_until 180 "NatsCluster Ready" nc_ready "$NS" nats
before=$(pods_of "$NS" nats)
generation=$(kubectl -n "$NS" get nc nats -o jsonpath='{.metadata.generation}')
digest=$(kubectl -n "$NS" get nc nats -o jsonpath='{.status.configDigest}')
revision=$(kubectl -n "$NS" get sts nats -o jsonpath='{.status.updateRevision}')
config=$(kubectl -n "$NS" get configmap nats-config -o jsonpath='{.data.nats\.conf}')

# refused WHAT EXPECTED-MESSAGE NAME REPLICAS SPEC: the API server refuses this apply
# with a message containing EXPECTED-MESSAGE.
refused() {
  local what=$1 expect=$2 out
  shift 2
  if out=$(natscluster_try "$NS" "$@"); then
    fail "the API server accepted $what: $out"
  fi
  grep -qF -- "$expect" <<<"$out" || fail "refusal of $what does not say '$expect': $out"
  echo "refused: $what: $(grep -oE 'spec[^:]*: [^,]*' <<<"$out" | head -n1)"
}
refused "replicas -1" "should be greater than or equal to 1" nats -1
refused "lameDuckDuration 5s" "lameDuckDuration must be at least 30s" nats 3 "  lameDuckDuration: 5s"
refused "a plain-text password" "password must be a bcrypt hash" nats 3 "  config:
    authorization:
      users: [{user: a, password: secret}]"
[ "$(kubectl -n "$NS" get nc nats -o jsonpath='{.metadata.generation}')" = "$generation" ] ||
  fail "a refused apply changed the NatsCluster"

# Immutable storage: a second NatsCluster with a (never bound: no provisioner here) claim.
STORE="  jetstream:
    enabled: true
    fileStorage:"
natscluster "$NS" store 1 "$STORE
      size: 1Gi
      storageClassName: e2e-a"
refused "a storage class change" "storageClassName is immutable" store 1 "$STORE
      size: 1Gi
      storageClassName: e2e-b"
refused "a smaller volume" "size cannot decrease" store 1 "$STORE
      size: 512Mi
      storageClassName: e2e-a"
refused "removing fileStorage" "jetstream.fileStorage cannot be removed" store 1 "  jetstream:
    enabled: true
    memoryStorage: {size: 64Mi}"
kubectl -n "$NS" delete nc store --wait=false >/dev/null

# A config the broker refuses: reported, nothing touched.
natscluster "$NS" nats 3 "  config:
    merge: {max_payload: lots}"
degraded() {
  local s
  s=$(kubectl -n "$NS" get nc nats -o \
    jsonpath='{.status.conditions[?(@.type=="Degraded")].status} {.status.conditions[?(@.type=="Degraded")].reason}')
  [ "$s" = "True InvalidConfig" ]
}
wait_until 60 "Degraded/InvalidConfig for a config natrix-server refuses" degraded
msg=$(kubectl -n "$NS" get nc nats -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}')
grep -qE 'nats\.conf:[0-9]+:[0-9]+: .*max_payload = "lots"' <<<"$msg" ||
  fail "Degraded message has no nats.conf:line:col and offending line: $msg"
kubectl -n "$NS" get events --field-selector type=Warning,reason=InvalidConfig -o name | grep -q . ||
  fail "no InvalidConfig Warning event"
sleep 3 # time for a wrong apply to show, if the operator made one
[ "$(kubectl -n "$NS" get configmap nats-config -o jsonpath='{.data.nats\.conf}')" = "$config" ] ||
  fail "the ConfigMap changed for a refused config"
[ "$(kubectl -n "$NS" get sts nats -o jsonpath='{.status.updateRevision}')" = "$revision" ] ||
  fail "the StatefulSet changed for a refused config"
[ "$(pods_of "$NS" nats)" = "$before" ] || fail "pods changed for a refused config"
for p in nats-0 nats-1 nats-2; do
  [ "$(monitor "$NS" "$p" varz | json_field config_digest)" = "$digest" ] ||
    fail "$p no longer runs config $digest"
done
echo "invalid config: Degraded/InvalidConfig: ${msg%%. Nothing*}; ConfigMap, StatefulSet and pods untouched"

# The API server goes away and comes back; then the spec is fixed with a new value.
operator_pod=$(kubectl -n "$NS" get pods -l app.kubernetes.io/name=natrix-operator -o jsonpath='{.items[0].metadata.name}')
t0=$(now)
"$E2E_DIR/cluster" restart kube-apiserver >/dev/null 2>&1 || fail "e2e/cluster restart kube-apiserver failed"
down_s=$(since "$t0")
t1=$(now)
natscluster "$NS" nats 3 "  config:
    maxPayload: 3145728"
applied() {
  degraded && return 1
  nc_ready "$NS" nats || return 1
  local p
  for p in nats-0 nats-1 nats-2; do
    [ "$(monitor "$NS" "$p" varz | json_field max_payload)" = 3145728 ] || return 1
  done
}
wait_until 120 "the fixed spec applied after the API-server restart" applied
resume_s=$(since "$t1")
[ "$(pods_of "$NS" nats)" = "$before" ] || fail "pods changed by a reloadable fix"
restarts=$(kubectl -n "$NS" get pod "$operator_pod" -o jsonpath='{.status.containerStatuses[0].restartCount}') ||
  fail "the operator pod $operator_pod is gone"
[ "$restarts" = 0 ] || fail "the operator restarted $restarts times"

echo "api-server restart: ${down_s}s until ready again; fixed spec (maxPayload) live on every pod ${resume_s}s after apply, operator pod $operator_pod never restarted"
