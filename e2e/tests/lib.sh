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

# natscli_job NS NAME ARGS-JSON: a Job that runs natscli (its own local image) once with
# ARGS-JSON, bounded to 60 s, no retries.
natscli_job() {
  kubectl -n "$1" apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: $2
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 60
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
