# shellcheck shell=bash
# Helpers for the e2e tests (sourced). Each test is a bash script run by `e2e/cluster test`
# with KUBECONFIG set; it exits non-zero on failure, after printing what it saw.
set -euo pipefail
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$E2E_DIR/.." && pwd)
: "${KUBECONFIG:?run through e2e/cluster test}"
CACHE=${NATRIX_CACHE:-$HOME/.cache/natrix}
export PATH="$CACHE/e2e/bin:$PATH"

image() { NATRIX_IMAGE_DIR=$CACHE/e2e/images "$ROOT/deploy/image" ref "$@"; }
natscli_version() { cat "$CACHE/bin/.nats.version" 2>/dev/null || echo latest; }

# natscli_job NS NAME ARGS-JSON [SECONDS] [RETRIES]: a Job that runs natscli (its own
# local image) with ARGS-JSON, bounded to SECONDS (60), retried RETRIES times (0).
natscli_job() {
  kubectl -n "$1" apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: $2
spec:
  backoffLimit: ${5:-0}
  activeDeadlineSeconds: ${4:-60}
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: nats
          image: $(image natscli "$(natscli_version)")
          imagePullPolicy: Never
          env: [{name: HOME, value: /tmp}]
          args: $3
YAML
}

# dump NS: everything a reader needs to see why a test in NS failed.
dump() {
  local ns=$1
  echo "---- state of namespace $ns" >&2
  kubectl -n "$ns" get all -o wide >&2 || true
  kubectl -n "$ns" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 25 >&2 || true
  local p
  for p in $(kubectl -n "$ns" get pods -o name 2>/dev/null); do
    echo "---- logs of $p" >&2
    kubectl -n "$ns" logs "$p" --all-containers --tail 30 >&2 || true
  done
}

fail() {
  echo "FAIL: $*" >&2
  [ -n "${TEST_NS:-}" ] && dump "$TEST_NS"
  exit 1
}

# wait_log NS POD REGEX SECONDS: until the pod's log matches.
wait_log() {
  local ns=$1 pod=$2 re=$3 secs=$4 _
  for _ in $(seq 1 "$secs"); do
    # Captured first: under pipefail, `grep -q` closing the pipe early fails the pipeline.
    local log
    log=$(kubectl -n "$ns" logs "$pod" 2>/dev/null || true)
    if grep -qE "$re" <<<"$log"; then return 0; fi
    sleep 1
  done
  fail "pod $pod did not log /$re/ within ${secs}s"
}

# fresh_namespace NS: deletes NS if left over, creates it, and deletes it when the test ends.
fresh_namespace() {
  TEST_NS=$1
  kubectl delete namespace "$TEST_NS" --ignore-not-found --wait=true --timeout=60s >/dev/null
  kubectl create namespace "$TEST_NS" >/dev/null
  trap 'kubectl delete namespace "$TEST_NS" --wait=false >/dev/null 2>&1 || true' EXIT
}

# now: seconds since the epoch with milliseconds, for timings.
now() { date +%s.%3N; }
# since T0: seconds elapsed since T0 (from `now`), one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_until SECONDS WHAT CMD...: polls CMD every half second until it succeeds; fails
# the test naming WHAT if it does not within SECONDS.
wait_until() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not within ${secs}s"
    sleep 0.5
  done
}

# install_operator NS: the operator from charts/natrix (local image) as release `natrix`
# in NS; the EXIT trap uninstalls it (and waits, so the next test never shares the
# cluster with this operator) and deletes NS.
install_operator() {
  local ns=$1 img
  shift
  img=$(image natrix-operator)
  # shellcheck disable=SC2064 # expanded now, on purpose: NS is fixed for this trap
  trap "helm uninstall natrix -n '$ns' --wait --timeout 60s >/dev/null 2>&1 || true; kubectl delete namespace '$ns' --wait=false >/dev/null 2>&1 || true" EXIT
  helm install natrix "$ROOT/charts/natrix" -n "$ns" \
    --set image.repository="${img%:*}" --set image.tag="${img##*:}" \
    --set image.pullPolicy=Never "$@" --wait --timeout 120s >/dev/null ||
    fail "helm install of the operator chart failed"
}

# natscluster NS NAME REPLICAS [SPEC-YAML]: applies a NatsCluster running the local
# natrix-server image; SPEC-YAML (indented by 2) is appended to its spec. Prints
# kubectl's output on failure (for tests that expect a refusal, see natscluster_try).
natscluster() {
  natscluster_try "$@" >/dev/null || fail "kubectl apply of NatsCluster $2 was refused"
}
natscluster_try() {
  local img
  img=$(image natrix-server)
  kubectl -n "$1" apply -f - 2>&1 <<YAML
apiVersion: natrix.io/v1alpha1
kind: NatsCluster
metadata:
  name: $2
spec:
  replicas: $3
  image: ${img%:*}
  version: "${img##*:}"
  imagePullPolicy: Never
${4:-}
YAML
}

# creds_job NAME USER SECONDS ARGS...: a Job running the nats CLI against $URL in $NS with
# USER's creds Secret (USER-creds) mounted; CREDS_JOB_RETRIES sets its backoffLimit (0).
creds_job() {
  local name=$1 user=$2 secs=$3 args
  shift 3
  args=$(printf '"%s",' --server "$URL" --creds /creds/user.creds "$@")
  kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: $name
spec:
  backoffLimit: ${CREDS_JOB_RETRIES:-0}
  activeDeadlineSeconds: $secs
  template:
    spec:
      restartPolicy: Never
      volumes: [{name: creds, secret: {secretName: $user-creds}}]
      containers:
        - name: nats
          image: $(image natscli "$(natscli_version)")
          imagePullPolicy: Never
          env: [{name: HOME, value: /tmp}]
          volumeMounts: [{name: creds, mountPath: /creds, readOnly: true}]
          args: [${args%,}]
YAML
}

# cr_ready NS KIND NAME: the resource's Ready condition is True for its current generation.
cr_ready() {
  local out gen obs st
  out=$(kubectl -n "$1" get "$2" "$3" -o \
    jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.conditions[?(@.type=="Ready")].status}')
  read -r gen obs st <<<"$out"
  [ "$gen" = "$obs" ] && [ "$st" = True ]
}

# nc_ready NS NAME: the NatsCluster's Ready condition is True for its current generation.
nc_ready() { cr_ready "$1" natscluster "$2"; }

# monitor NS POD PATH: a monitoring endpoint of a pod (port 8222) through the API server's
# pod proxy, bounded by MONITOR_TIMEOUT (default 30s).
monitor() { kubectl get --raw "/api/v1/namespaces/$1/pods/$2:8222/proxy/$3" --request-timeout="${MONITOR_TIMEOUT:-30s}"; }

# json_field FIELD: a top-level scalar of the JSON on stdin (monitor's pretty JSON).
json_field() { grep -oE "\"$1\": *(\"[^\"]*\"|[-0-9.a-z]+)" | head -n1 | sed -E 's/^"[^"]*": *"?//; s/"$//'; }

# pods_of NS NAME: "pod uid" lines of a NatsCluster's pods, sorted by name.
pods_of() {
  kubectl -n "$1" get pods -l "app.kubernetes.io/instance=$2" \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid}{"\n"}{end}' | sort
}

# exit_trap first|last CMD: adds CMD to the EXIT trap, before or after what it runs.
exit_trap() {
  local where=$1 add=$2 cur
  cur=$(trap -p EXIT)
  if [ -z "$cur" ]; then
    trap -- "$add" EXIT
    return
  fi
  # `trap -p` prints `trap -- 'CMD' EXIT`, CMD quoted for the shell.
  eval "set -- $cur"
  if [ "$where" = first ]; then
    trap -- "$add; $3" EXIT
  else
    trap -- "$3; $add" EXIT
  fi
}
# on_exit CMD: runs CMD at exit, after what the EXIT trap already runs.
on_exit() { exit_trap last "$1"; }
# before_exit CMD: runs CMD at exit first. Resources whose finalizers the operator removes
# must be deleted this way, before install_operator's trap uninstalls it.
before_exit() { exit_trap first "$1"; }

# Storage for claims: the cluster has no provisioner. hostpath_pvs NS COUNT SIZE makes
# COUNT PersistentVolumes of SIZE in the StorageClass `e2e-local` (made here if missing:
# no provisioner, Immediate binding, expansion allowed), each a hostPath directory under
# the cluster's run/pv/ (world-writable: the pods run as nobody, and the kubelet does not
# apply fsGroup to hostPath). They carry no claimRef: any claim of the class binds one.
# The EXIT trap (on_exit, so call this after setting the test's own trap) deletes them
# and their directories once the claims are gone (bounded), and `e2e/cluster down`
# removes run/ whatever is left.
E2E_STORAGE_CLASS=e2e-local
hostpath_pvs() {
  local ns=$1 count=$2 size=$3 run i name dir
  run=$(cd "$CACHE/e2e/run" && pwd -P) || fail "no cluster run folder under $CACHE/e2e"
  kubectl apply -f - >/dev/null <<YAML || fail "could not create StorageClass $E2E_STORAGE_CLASS"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $E2E_STORAGE_CLASS
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
allowVolumeExpansion: true
YAML
  on_exit "hostpath_pvs_delete '$ns'"
  for i in $(seq 0 $((count - 1))); do
    # Unique per call: the volumes of an earlier attempt may still be terminating.
    name="e2e-$ns-$(date +%s)-$i"
    dir="$run/pv/$name"
    mkdir -p "$dir"
    chmod 0777 "$dir"
    kubectl apply -f - >/dev/null <<YAML || fail "could not create PersistentVolume $name"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels: {natrix.io/e2e-pool: "$ns"}
  annotations: {natrix.io/e2e-dir: "$dir"}
spec:
  storageClassName: $E2E_STORAGE_CLASS
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: "$dir", type: Directory}
YAML
  done
}

# hostpath_pvs_delete NS: the volumes of hostpath_pvs NS, and their directories. A bound
# volume goes when its claim does (the namespace's deletion, once its pods are gone):
# waits up to 90 s for that, then removes the directories in any case.
hostpath_pvs_delete() {
  local ns=$1 sel="natrix.io/e2e-pool=$1" dirs _
  dirs=$(kubectl get pv -l "$sel" -o jsonpath='{range .items[*]}{.metadata.annotations.natrix\.io/e2e-dir}{"\n"}{end}' 2>/dev/null || true)
  kubectl delete pv -l "$sel" --wait=false >/dev/null 2>&1 || true
  for _ in $(seq 1 90); do
    [ -z "$(kubectl get pv -l "$sel" -o name 2>/dev/null)" ] && break
    sleep 1
  done
  local d
  for d in $dirs; do
    case $d in */run/pv/e2e-"$ns"-*) rm -rf "$d" ;; esac
  done
}

# client_job NAME ARGS-JSON SECONDS: natrix-e2e-client (e2e/client) in a Job in the test's
# namespace $NS, bounded to SECONDS.
client_job() {
  kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: $1
spec:
  backoffLimit: 0
  activeDeadlineSeconds: $3
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: client
          image: $(image natrix-e2e-client)
          imagePullPolicy: Never
          args: $2
YAML
}
