#!/usr/bin/env bash
# Operator against a real control plane, without nodes: etcd, kube-apiserver and
# kube-controller-manager (garbage collector and StatefulSet controller) from the e2e
# binaries (~/.cache/natrix/e2e/bin, or $K8S_BIN), the natrix-operator binary running
# locally as a user bound to the RBAC of deploy/kustomize.
#
# What it shows (each line prints PASS or FAIL; the exit code is the number of FAILs):
# - the operator applies its CRD at start-up with its least-privilege RBAC, and takes the
#   leader Lease;
# - the API server accepts the CRD (structural schema, CEL cost budget) and refuses bad
#   specs with the CEL messages;
# - every example reconciles: ConfigMap, Services, StatefulSet, PDB with owner references,
#   status with observedGeneration and conditions; gateways rendered on both sides;
# - a reloadable change only touches the ConfigMap, a restart-needed one the pod template;
# - a config natrix-server's parser refuses, or a missing cert-manager Certificate, is
#   reported as Degraded and changes nothing;
# - the scale subresource scales; the operator survives an API-server restart;
# - deleting a NatsCluster deletes what it owned (garbage collector).
# Pods stay Pending (no kubelet): readiness and live reload are the e2e tier's job.
set -uo pipefail
cd "$(dirname "$0")/../.."

K8S_BIN=${K8S_BIN:-$HOME/.cache/natrix/e2e/bin}
OPERATOR=${OPERATOR:-${CARGO_TARGET_DIR:-/work/target-operator}/debug/natrix-operator}
KUBECTL=${KUBECTL:-$K8S_BIN/kubectl}
PORT=${APISERVER_PORT:-16443}
ETCD_PORT=${ETCD_PORT:-23791}
for b in "$K8S_BIN/etcd" "$K8S_BIN/kube-apiserver" "$K8S_BIN/kube-controller-manager" "$KUBECTL" "$OPERATOR"; do
  [ -x "$b" ] || { echo "missing $b (build the operator, or set K8S_BIN/OPERATOR/KUBECTL)"; exit 2; }
done

for p in "$PORT" "$ETCD_PORT" "$((ETCD_PORT + 1))" 18080; do
  if ss -ltn "( sport = :$p )" | grep -q LISTEN; then echo "port $p is in use (another run?)"; exit 2; fi
done

W=$(mktemp -d /tmp/natrix-apiserver.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap "exit 143" TERM INT

fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi; }
# Retries a command for up to $1 seconds.
eventually() { local t=$1; shift; local end=$((SECONDS + t)); until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $end ] && return 1; sleep 1; done; }

openssl genrsa -out "$W/sa.key" 2048 2>/dev/null
openssl rsa -in "$W/sa.key" -pubout -out "$W/sa.pub" 2>/dev/null
echo 'admin-token,admin,1,"system:masters"' > "$W/tokens.csv"
echo 'operator-token,natrix-operator,2,"natrix"' >> "$W/tokens.csv"

start_etcd() {
  "$K8S_BIN/etcd" --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" >"$W/etcd.log" 2>&1 &
  PIDS+=($!)
}
start_apiserver() {
  "$K8S_BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 --secure-port "$PORT" --cert-dir "$W/certs" \
    --token-auth-file "$W/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$W/sa.pub" \
    --service-account-signing-key-file "$W/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
    >"$W/apiserver.log" 2>&1 &
  APISERVER_PID=$!
  PIDS+=($APISERVER_PID)
}
kc() { "$KUBECTL" --kubeconfig "$W/admin.conf" "$@"; }
for who in admin operator; do
  cat > "$W/$who.conf" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$PORT", insecure-skip-tls-verify: true}}]
users: [{name: $who, user: {token: $who-token}}]
contexts: [{name: local, context: {cluster: local, user: $who, namespace: default}}]
current-context: local
EOF
done

start_etcd
start_apiserver
eventually 90 kc get --raw /readyz || { echo "API server did not start"; tail -20 "$W/apiserver.log"; exit 2; }
"$K8S_BIN/kube-controller-manager" --kubeconfig "$W/admin.conf" --authentication-kubeconfig "$W/admin.conf" \
  --authorization-kubeconfig "$W/admin.conf" --controllers garbage-collector-controller,statefulset-controller,serviceaccount-controller \
  --secure-port 0 --leader-elect=false >"$W/kcm.log" 2>&1 &
PIDS+=($!)

# The operator's RBAC from the kustomize base, bound to the operator's user. The CRD is
# not applied here: the operator must install it itself.
kc create namespace natrix-system >/dev/null
kc apply -f deploy/kustomize/rbac.yaml >/dev/null
kc create clusterrolebinding natrix-operator-user --clusterrole natrix-operator --user natrix-operator >/dev/null
kc -n natrix-system create rolebinding natrix-operator-user --role natrix-operator-leader-election --user natrix-operator >/dev/null

start_operator() {
  POD_NAME=local-operator POD_NAMESPACE=natrix-system KUBECONFIG="$W/operator.conf" RUST_LOG=info,kube=warn \
    "$OPERATOR" run --log-json --metrics-addr 127.0.0.1:18080 --lease-duration 6 >>"$W/operator.log" 2>&1 &
  OPERATOR_PID=$!
  PIDS+=($OPERATOR_PID)
}
start_operator
check "operator installs its CRD with least-privilege RBAC" eventually 60 kc get crd natsclusters.natrix.io
check "operator ready (/readyz)" eventually 30 curl -sf http://127.0.0.1:18080/readyz
check "operator holds the leader Lease" eventually 30 sh -c "$KUBECTL --kubeconfig $W/admin.conf -n natrix-system get lease natrix-operator -o jsonpath='{.spec.holderIdentity}' | grep -qx local-operator"

# --- the API server refuses bad specs (OpenAPI schema and CEL)
refuse() {
  local what=$1 want=$2 spec=$3 out
  out=$(printf 'apiVersion: natrix.io/v1alpha1\nkind: NatsCluster\nmetadata: {name: bad, namespace: default}\nspec: %s\n' "$spec" |
    kc apply --dry-run=server -f - 2>&1)
  if [ $? -ne 0 ] && grep -qF "$want" <<<"$out"; then pass "refused: $what"; else fail "refused: $what (got: $out)"; fi
}
refuse "replicas 0" "should be greater than or equal to 1" '{replicas: 0}'
refuse "replicas 65" "should be less than or equal to 64" '{replicas: 65}'
refuse "plain password" "password must be a bcrypt hash" '{config: {authorization: {users: [{user: a, password: secret}]}}}'
refuse "user without credentials" "either an nkey, or both user and password" '{config: {authorization: {users: [{user: a}]}}}'
refuse "mqtt without jetstream" "mqtt needs jetstream.enabled" '{mqtt: {port: 1883}}'
refuse "jetstream without storage" "needs memoryStorage or fileStorage" '{jetstream: {enabled: true}}'
refuse "bad quantity" "size must be a positive quantity" '{jetstream: {enabled: true, fileStorage: {size: lots}}}'
refuse "short lame duck" "lameDuckDuration must be at least 30s" '{lameDuckDuration: 10s}'
refuse "gateway remote with both" "either a natsCluster or urls" '{gateways: {remotes: [{natsCluster: {name: x}, name: x, urls: ["nats://a:7222"]}]}}'
refuse "unknown pull policy" "Unsupported value" '{imagePullPolicy: Sometimes}'
refuse "TLS with secret and certificate" "either a secretName or a cert-manager certificate" '{tls: {client: {secretName: s, certificate: c}}}'

# --- examples reconcile
kc create namespace messaging >/dev/null
for f in deploy/examples/*.yaml; do kc apply -f "$f" >/dev/null || fail "apply $f"; done
owned_by() { # kind name ns owner
  kc -n "$3" get "$1" "$2" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}' | grep -qx "NatsCluster/$4"
}
for nc in default/nats default/js messaging/full east/east west/west; do
  ns=${nc%/*} n=${nc#*/}
  check "$nc: ConfigMap owned" eventually 60 owned_by configmap "$n-config" "$ns" "$n"
  check "$nc: headless Service owned" eventually 30 owned_by service "$n-headless" "$ns" "$n"
  check "$nc: client Service owned" eventually 30 owned_by service "$n" "$ns" "$n"
  check "$nc: StatefulSet owned" eventually 30 owned_by statefulset "$n" "$ns" "$n"
  check "$nc: PDB owned" eventually 30 owned_by pdb "$n" "$ns" "$n"
  check "$nc: status observedGeneration" eventually 30 sh -c "$KUBECTL --kubeconfig $W/admin.conf -n $ns get nc $n -o jsonpath='{.status.observedGeneration}' | grep -qx 1"
done
check "full: Degraded=ServiceMonitorUnavailable (no Prometheus operator)" eventually 30 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf -n messaging get nc full -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].reason}' | grep -qx ServiceMonitorUnavailable"
check "nats: Progressing (pods cannot start without nodes)" eventually 30 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get nc nats -o jsonpath='{.status.conditions[?(@.type==\"Progressing\")].status}' | grep -qx True"
check "west renders the gateway east declared" sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf -n west get cm west-config -o jsonpath='{.data.nats\.conf}' | grep -q 'nats://east-0.east-headless.east.svc.cluster.local:7222'"
check "StatefulSet controller created pods (Pending)" eventually 60 sh -c "$KUBECTL --kubeconfig $W/admin.conf get pod nats-0"
check "js: data PVC template 10Gi" sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get sts js -o jsonpath='{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}' | grep -qx 10Gi"

# --- a gateway peer that appears later re-renders the cluster naming it
printf 'apiVersion: natrix.io/v1alpha1\nkind: NatsCluster\nmetadata: {name: early, namespace: default}\nspec: {replicas: 1, gateways: {remotes: [{natsCluster: {name: late}}]}}\n' | kc apply -f - >/dev/null
check "missing gateway peer: Degraded=GatewayProblem" eventually 30 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get nc early -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].reason}' | grep -qx GatewayProblem"
printf 'apiVersion: natrix.io/v1alpha1\nkind: NatsCluster\nmetadata: {name: late, namespace: default}\nspec: {replicas: 1, gateways: {}}\n' | kc apply -f - >/dev/null
check "peer appears: the cluster naming it re-renders at once" eventually 20 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get cm early-config -o jsonpath='{.data.nats\.conf}' | grep -q 'nats://late-0.late-headless.default.svc.cluster.local:7222'"
check "peer appears: Degraded clears" eventually 20 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get nc early -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].status}' | grep -qx False"

# --- a cert-manager Certificate that does not exist (no cert-manager here): nothing applied
printf 'apiVersion: natrix.io/v1alpha1\nkind: NatsCluster\nmetadata: {name: certy, namespace: default}\nspec: {replicas: 1, tls: {client: {certificate: certy-client}}}\n' | kc apply -f - >/dev/null
check "missing Certificate: Degraded=CertificateNotFound" eventually 30 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get nc certy -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].reason}' | grep -qx CertificateNotFound"
check "missing Certificate: no StatefulSet applied" sh -c "! $KUBECTL --kubeconfig $W/admin.conf get sts certy"

# --- immutability on update (CEL transition rules)
out=$(kc patch nc js --type merge -p '{"spec":{"jetstream":{"fileStorage":{"size":"5Gi"}}}}' 2>&1)
if grep -qF "size cannot decrease" <<<"$out"; then pass "refused: volume shrink"; else fail "refused: volume shrink ($out)"; fi
out=$(kc patch nc js --type merge -p '{"spec":{"jetstream":{"fileStorage":{"storageClassName":"other"}}}}' 2>&1)
if grep -qF "storageClassName is immutable" <<<"$out"; then pass "refused: storage class change"; else fail "refused: storage class change ($out)"; fi

restart_digest() { kc get sts nats -o jsonpath='{.spec.template.metadata.annotations.natrix\.io/restart-digest}'; }
cm_text() { kc get cm nats-config -o jsonpath='{.data.nats\.conf}'; }

# --- reloadable change: only the ConfigMap
d0=$(restart_digest)
kc patch nc nats --type merge -p '{"spec":{"config":{"maxPayload":2097152}}}' >/dev/null
check "reloadable change reaches the ConfigMap" eventually 30 sh -c "$KUBECTL --kubeconfig $W/admin.conf get cm nats-config -o jsonpath='{.data.nats\.conf}' | grep -q 'max_payload = 2097152'"
[ "$(restart_digest)" = "$d0" ] && pass "reloadable change keeps the pod template" || fail "reloadable change rolled the pods"
check "event ConfigReloading" eventually 20 sh -c "$KUBECTL --kubeconfig $W/admin.conf get events.events.k8s.io --field-selector reason=ConfigReloading -o name | grep -q ."

# --- restart-needed change: the pod template
kc patch nc nats --type merge -p '{"spec":{"monitoring":{"port":9222}}}' >/dev/null
check "restart-needed change rolls the pod template" eventually 30 sh -c "[ \"\$($KUBECTL --kubeconfig $W/admin.conf get sts nats -o jsonpath='{.spec.template.metadata.annotations.natrix\.io/restart-digest}')\" != '$d0' ]"
check "event RollingRestart names the refused field" eventually 20 sh -c "$KUBECTL --kubeconfig $W/admin.conf get events.events.k8s.io --field-selector reason=RollingRestart -o jsonpath='{.items[*].note}' | grep -q HTTPPort"

# --- a config natrix-server refuses: Degraded, nothing touched
rv=$(kc get cm nats-config -o jsonpath='{.metadata.resourceVersion}')
kc patch nc nats --type merge -p '{"spec":{"config":{"merge":{"max_payload":"lots"}}}}' >/dev/null
check "refused config: Degraded=InvalidConfig with position" eventually 30 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get nc nats -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].message}' | grep -q 'nats.conf:[0-9]*:[0-9]*: interface conversion'"
[ "$(kc get cm nats-config -o jsonpath='{.metadata.resourceVersion}')" = "$rv" ] && pass "refused config leaves the ConfigMap alone" || fail "refused config changed the ConfigMap"
kc patch nc nats --type json -p '[{"op":"remove","path":"/spec/config/merge"}]' >/dev/null
check "fixed spec clears Degraded" eventually 30 sh -c \
  "$KUBECTL --kubeconfig $W/admin.conf get nc nats -o jsonpath='{.status.conditions[?(@.type==\"Degraded\")].status}' | grep -qx False"

# --- scale subresource
kc scale nc nats --replicas 5 >/dev/null
check "kubectl scale: StatefulSet has 5 replicas" eventually 30 sh -c "$KUBECTL --kubeconfig $W/admin.conf get sts nats -o jsonpath='{.spec.replicas}' | grep -qx 5"
check "kubectl scale: 5 routes in the config" sh -c "$KUBECTL --kubeconfig $W/admin.conf get cm nats-config -o jsonpath='{.data.nats\.conf}' | grep -c 'headless.default.svc.cluster.local:6222' | grep -qx 5"

# --- API server restart
kill "$APISERVER_PID"; wait "$APISERVER_PID" 2>/dev/null
sleep 3
start_apiserver
eventually 180 kc get --raw /readyz || fail "API server did not come back ($(tail -3 "$W/apiserver.log"))"
kc scale nc nats --replicas 3 >/dev/null
check "operator resumes after an API-server restart" eventually 60 sh -c "$KUBECTL --kubeconfig $W/admin.conf get sts nats -o jsonpath='{.spec.replicas}' | grep -qx 3"
kill -0 "$OPERATOR_PID" 2>/dev/null && pass "operator process survived" || fail "operator exited ($(tail -3 "$W/operator.log"))"

# --- deletion: owned objects go (garbage collector)
kc delete nc nats --wait=true >/dev/null
check "delete: StatefulSet gone" eventually 60 sh -c "! $KUBECTL --kubeconfig $W/admin.conf get sts nats"
check "delete: ConfigMap gone" eventually 30 sh -c "! $KUBECTL --kubeconfig $W/admin.conf get cm nats-config"
check "delete: Services gone" eventually 30 sh -c "! $KUBECTL --kubeconfig $W/admin.conf get svc nats nats-headless"
check "delete: PDB gone" eventually 30 sh -c "! $KUBECTL --kubeconfig $W/admin.conf get pdb nats"

check "metrics count reconciles" sh -c "curl -sf http://127.0.0.1:18080/metrics | grep -Eq '^natrix_operator_reconciles_total [1-9]'"
echo "operator log ($W/operator.log): $(grep -c '"level":"WARN"' "$W/operator.log") warnings, $(grep -c '"level":"ERROR"' "$W/operator.log") errors"
echo "$fails failed"
exit "$fails"
