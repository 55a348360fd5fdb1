#!/usr/bin/env bash
# Live reload through the operator: a 3-replica NatsCluster (timed from `kubectl apply` to
# Ready), then a reloadable change (config.maxPayload). Every pod must show the new value
# on /varz while keeping its UID and restart count (no restart, no roll), and the
# NatsCluster status must list each pod with the new config digest. Prints the seconds
# from `kubectl apply` to the effect on each pod and to the status saying so, and as the
# anchor the delay a ConfigMap change takes to reach a pod without the operator's nudge
# (what the NATS Helm chart's reloader sidecar waits for).
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-reload
NS=$TEST_NS
install_operator "$NS"

t0=$(now)
natscluster "$NS" nats 3
wait_until 180 "NatsCluster Ready" nc_ready "$NS" nats
ready_s=$(since "$t0")

before=$(pods_of "$NS" nats)
[ "$(wc -l <<<"$before")" = 3 ] || fail "expected 3 pods, got: $before"
old_digest=$(kubectl -n "$NS" get nc nats -o jsonpath='{.status.configDigest}')
revision=$(kubectl -n "$NS" get sts nats -o jsonpath='{.status.updateRevision}')
for p in nats-0 nats-1 nats-2; do
  v=$(monitor "$NS" "$p" varz)
  [ "$(json_field config_digest <<<"$v")" = "$old_digest" ] ||
    fail "$p runs $(json_field config_digest <<<"$v"), status says $old_digest"
  [ "$(json_field max_payload <<<"$v")" = 1048576 ] || fail "$p max_payload before the change"
done

# The reloadable change.
t1=$(now)
natscluster "$NS" nats 3 "  config:
    maxPayload: 2097152"
declare -A took=()
deadline=$(($(date +%s) + 120))
while [ ${#took[@]} -lt 3 ]; do
  for p in nats-0 nats-1 nats-2; do
    [ -n "${took[$p]:-}" ] && continue
    v=$(monitor "$NS" "$p" varz 2>/dev/null || true)
    [ "$(json_field max_payload <<<"$v")" = 2097152 ] && took[$p]=$(since "$t1")
  done
  [ "$(date +%s)" -lt "$deadline" ] || fail "max_payload reached only ${!took[*]} within 120s"
  sleep 0.5
done
effect_s=$(printf '%s\n' "${took[@]}" | sort -n | tail -n1)

# The status: a new digest, and every pod reporting it.
status_applied() {
  local s
  s=$(kubectl -n "$NS" get nc nats -o \
    jsonpath='{.status.configDigest}{" "}{range .status.podConfigs[*]}{.pod}={.configDigest}={.applied}{" "}{end}')
  read -r digest pods <<<"$s"
  [ "$digest" != "$old_digest" ] || return 1
  for p in nats-0 nats-1 nats-2; do
    grep -qw "$p=$digest=true" <<<"$pods" || return 1
  done
}
wait_until 60 "status.podConfigs with the new digest on every pod" status_applied
status_s=$(since "$t1")
new_digest=$(kubectl -n "$NS" get nc nats -o jsonpath='{.status.configDigest}')
wait_until 30 "NatsCluster Ready after the reload" nc_ready "$NS" nats
for p in nats-0 nats-1 nats-2; do
  d=$(monitor "$NS" "$p" varz | json_field config_digest)
  [ "$d" = "$new_digest" ] || fail "$p reports config_digest $d, status says $new_digest"
done

# Same pods, never restarted, no rollout.
after=$(pods_of "$NS" nats)
[ "$after" = "$before" ] || fail "pods changed during a reload: before
$before
after
$after"
restarts=$(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=nats \
  -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')
[ "$restarts" = "0 0 0 " ] || fail "containers restarted during a reload: $restarts"
[ "$(kubectl -n "$NS" get sts nats -o jsonpath='{.status.updateRevision}')" = "$revision" ] ||
  fail "the StatefulSet's pod template changed for a reloadable change"
kubectl -n "$NS" get events --field-selector reason=ConfigReloading -o name | grep -q . ||
  fail "no ConfigReloading event"
for p in nats-0 nats-1 nats-2; do
  a=$(kubectl -n "$NS" get pod "$p" -o jsonpath='{.metadata.annotations.natrix\.io/config-digest}')
  [ "$a" = "$new_digest" ] || fail "$p was not annotated with the new digest (kubelet refresh): '$a'"
done

# Anchor: what the NATS Helm chart's config-reloader sidecar gets. It watches the mounted
# file and sends SIGHUP, so its delay is the kubelet's own refresh of the ConfigMap
# volume. Emulated with a plain natrix-server pod (it watches its config file itself)
# on a ConfigMap changed directly, with no operator to nudge the kubelet.
anchor_conf() {
  kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: anchor}
data:
  nats.conf: |
    port: 4222
    http_port: 8222
    max_payload: $1
YAML
}
anchor_conf 1048576
kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: anchor}
spec:
  containers:
    - name: natrix
      image: $(image natrix-server)
      imagePullPolicy: Never
      args: ["-c", "/etc/natrix/nats.conf"]
      volumeMounts: [{name: config, mountPath: /etc/natrix}]
      readinessProbe: {httpGet: {path: /healthz, port: 8222}, periodSeconds: 1}
  volumes: [{name: config, configMap: {name: anchor}}]
YAML
kubectl -n "$NS" wait --for=condition=Ready pod/anchor --timeout=60s >/dev/null || fail "anchor pod not Ready"
# Three changes a few seconds apart: the delay depends on where the change falls in the
# kubelet's sync cycle (a pod that just changed state is synced at once).
anchor=()
for v in 2097152 3145728 4194304; do
  sleep 3
  t2=$(now)
  anchor_conf $v
  anchor_took() { [ "$(monitor "$NS" anchor varz | json_field max_payload)" = "$v" ]; }
  wait_until 150 "the anchor pod reloading a ConfigMap change on the kubelet's own schedule" anchor_took
  anchor+=("$(since "$t2")")
done
anchor_s=$(printf '%s\n' "${anchor[@]}" | awk '{ s += $1 } END { printf "%.1f", s / NR }')
sync=$(kubectl get --raw /api/v1/nodes/natrix-e2e/proxy/configz | grep -oE '"syncFrequency": *"[^"]*"' | sed -E 's/.*: *"//; s/"$//')

echo "timing: apply -> Ready (3 replicas): ${ready_s}s"
echo "timing: reloadable change (maxPayload) apply -> effect on every pod's /varz: ${effect_s}s (nats-0 ${took[nats-0]}s, nats-1 ${took[nats-1]}s, nats-2 ${took[nats-2]}s)"
echo "timing: reloadable change apply -> status.podConfigs all applied: ${status_s}s"
echo "timing: anchor (reloader-sidecar style: kubelet refresh of the volume, no nudge) ConfigMap change -> effect: mean ${anchor_s}s of ${anchor[*]} (kubelet syncFrequency ${sync:-?}; default 1m)"
echo "reload: max_payload 2097152 live on 3 pods, same UIDs, 0 restarts, digest $old_digest -> $new_digest"
