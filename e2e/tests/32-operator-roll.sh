#!/usr/bin/env bash
# A change natrix-server cannot reload (config.maxSubscriptions) rolls the StatefulSet:
# one pod at a time, highest ordinal first, each new pod created only after the one
# replaced before it is Ready, never more than one of three pods unavailable; all pods
# end with new UIDs and the new setting. Meanwhile a core subscriber (a pod) and a
# publisher (a Job, a numbered message every 50 ms) keep running through the client
# Service; the test counts the numbers the subscriber never got and prints them.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-roll
NS=$TEST_NS
install_operator "$NS"
SERVER=nats://nats.$NS.svc.cluster.local:4222
SUBJECT=op.roll

natscluster "$NS" nats 3
wait_until 180 "NatsCluster Ready" nc_ready "$NS" nats
before=$(pods_of "$NS" nats)
[ "$(wc -l <<<"$before")" = 3 ] || fail "expected 3 pods, got: $before"
old_revision=$(kubectl -n "$NS" get sts nats -o jsonpath='{.status.updateRevision}')

# The clients, through the Service: a subscriber printing each body, and a publisher
# sending 1, 2, 3, ... every 50 ms (bounded by its Job deadline; deleted after the roll).
kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: subscriber
spec:
  restartPolicy: Never
  containers:
    - name: nats
      image: $(image natscli "$(natscli_version)")
      imagePullPolicy: Never
      env: [{name: HOME, value: /tmp}]
      args: ["--server", "$SERVER", "sub", "$SUBJECT", "--raw"]
YAML
# (--raw prints no banner: wait until a server lists the subscription.)
subscribed() {
  local p
  for p in nats-0 nats-1 nats-2; do
    monitor "$NS" "$p" 'connz?subs=1' 2>/dev/null | grep -q "\"$SUBJECT\"" && return 0
  done
  return 1
}
wait_until 60 "the subscriber's subscription on a server" subscribed
natscli_job "$NS" publisher "[\"--server\", \"$SERVER\", \"pub\", \"$SUBJECT\", \"{{Count}}\", \"--count\", \"100000\", \"--sleep\", \"50ms\"]" 280
received() { kubectl -n "$NS" logs subscriber 2>/dev/null | grep -E '^[0-9]+$' || true; }
got_some() { [ "$(received | wc -l)" -ge 20 ]; }
wait_until 60 "the subscriber receiving the publisher's messages" got_some

# The restart-needed change; sample the pods every second until the roll is over.
t0=$(now)
natscluster "$NS" nats 3 "  config:
    maxSubscriptions: 1000"
samples=$(mktemp)
rolled() {
  local s
  s=$(kubectl -n "$NS" get sts nats -o \
    jsonpath='{.status.currentRevision} {.status.updateRevision} {.status.readyReplicas} {.status.updatedReplicas}')
  read -r cur upd ready updated <<<"$s"
  [ "$upd" != "$old_revision" ] && [ "$cur" = "$upd" ] && [ "$ready" = 3 ] && [ "$updated" = 3 ]
}
deadline=$(($(date +%s) + 240))
until rolled; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the StatefulSet did not roll within 240s"
  # Pods that serve: Ready and not terminating.
  kubectl -n "$NS" get pods -l app.kubernetes.io/instance=nats -o \
    jsonpath='{range .items[*]}{.metadata.name}:{.status.conditions[?(@.type=="Ready")].status}:{.metadata.deletionTimestamp}{" "}{end}' \
    >>"$samples" 2>/dev/null || true
  echo >>"$samples"
  sleep 1
done
roll_s=$(since "$t0")
wait_until 60 "NatsCluster Ready after the roll" nc_ready "$NS" nats
ready_s=$(since "$t0")

# Never more than one of three unavailable.
worst=0
while read -r line; do
  [ -n "$line" ] || continue
  serving=$(grep -oE '[a-z0-9-]+:True: ' <<<"$line " | wc -l || true)
  unavailable=$((3 - serving))
  [ $unavailable -gt $worst ] && worst=$unavailable
done <"$samples"
rm -f "$samples"
[ $worst -le 1 ] || fail "$worst of 3 pods were unavailable at once during the roll"

# New pods, created one at a time from the highest ordinal, each after the previous
# replacement was Ready.
after=$(pods_of "$NS" nats)
for p in nats-0 nats-1 nats-2; do
  old_uid=$(grep "^$p " <<<"$before" | cut -d' ' -f2)
  new_uid=$(grep "^$p " <<<"$after" | cut -d' ' -f2)
  if [ -z "$new_uid" ] || [ "$new_uid" = "$old_uid" ]; then
    fail "$p was not replaced ($old_uid -> $new_uid)"
  fi
done
created() { kubectl -n "$NS" get pod "$1" -o jsonpath='{.metadata.creationTimestamp}'; }
ready_at() { kubectl -n "$NS" get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastTransitionTime}'; }
order=""
for pair in "nats-1 nats-2" "nats-0 nats-1"; do
  read -r next prev <<<"$pair"
  c=$(created "$next")
  r=$(ready_at "$prev")
  [[ "$c" > "$r" || "$c" = "$r" ]] || fail "$next was created at $c, before $prev was Ready at $r"
  order="$order $prev Ready $r -> $next created $c;"
done
for p in nats-0 nats-1 nats-2; do
  v=$(monitor "$NS" "$p" varz | json_field max_subscriptions)
  [ "$v" = 1000 ] || fail "$p max_subscriptions is '$v' after the roll"
done
kubectl -n "$NS" get events --field-selector reason=RollingRestart -o name | grep -q . ||
  fail "no RollingRestart event"

# Messages: let the clients run a little longer on the new pods, then count the gaps.
last_during=$(received | sort -n | tail -n1)
more_after() { [ "$(received | sort -n | tail -n1)" -gt $((last_during + 40)) ]; }
wait_until 60 "messages flowing again after the roll" more_after
kubectl -n "$NS" delete job publisher --wait=false >/dev/null 2>&1 || true
sleep 1
nums=$(received | sort -n)
first=$(head -n1 <<<"$nums")
last=$(tail -n1 <<<"$nums")
unique=$(uniq <<<"$nums" | wc -l)
dups=$(($(wc -l <<<"$nums") - unique))
sent=$((last - first + 1))
lost=$((sent - unique))
gaps=$(awk 'NR > 1 && $1 > p + 1 { printf "%d-%d ", p + 1, $1 - 1 } { p = $1 }' <<<"$(uniq <<<"$nums")")

echo "roll: order$order"
echo "timing: restart-needed change (maxSubscriptions) apply -> all 3 pods replaced and Ready: ${roll_s}s (NatsCluster Ready ${ready_s}s)"
echo "roll: messages $first..$last published at 20/s through the Service during the roll: $unique received, LOST $lost, duplicated $dups; missing: ${gaps:-none}"
echo "roll: 3 pods replaced one at a time (at most $worst unavailable), max_subscriptions 1000 on every pod"
