#!/usr/bin/env bash
# Live reload through the operator: a 3-replica NatsCluster (timed from `kubectl apply` to
# Ready), then a reloadable change (config.maxPayload). Every pod must show the new value
# on /varz while keeping its UID and restart count (no restart, no roll), and the
# NatsCluster status must list each pod with the new config digest. Prints the seconds
# from `kubectl apply` to the effect on each pod and to the status saying so.
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

echo "timing: apply -> Ready (3 replicas): ${ready_s}s"
echo "timing: reloadable change (maxPayload) apply -> effect on every pod's /varz: ${effect_s}s (nats-0 ${took[nats-0]}s, nats-1 ${took[nats-1]}s, nats-2 ${took[nats-2]}s)"
echo "timing: reloadable change apply -> status.podConfigs all applied: ${status_s}s"
echo "reload: max_payload 2097152 live on 3 pods, same UIDs, 0 restarts, digest $old_digest -> $new_digest"
