#!/usr/bin/env bash
# e2e-timeout: 600
# A rolling restart of a 3-replica JetStream NatsCluster on PersistentVolumes (hostPath
# volumes from hostpath_pvs) while an R3 file stream takes acknowledged writes:
# - the claims bind, and every pod comes back on its own claim and volume (it restores
#   the stream from disk; the stream's state is the same on every pod afterwards);
# - the StatefulSet deletes a pod only while every other pod answers /healthz ok and the
#   stream's leader (its /jsz) counts it current: deletions are seen by a pod watch, and
#   each pod's health and the leader's view are sampled through the pod proxy every
#   second; each deletion is checked against the last sample taken before it;
# - no acknowledged message is lost or duplicated: natrix-e2e-client js-pub publishes
#   1, 2, 3, ... (Nats-Msg-Id = the number, each retried until acked) every 20 ms
#   through the client Service for the whole roll, then js-check reads the stream back.
# Prints the timings (each pod deleted -> Ready again, the roll, the longest wait for an
# ack) and the acked count.
. "$(dirname "$0")/lib.sh"
# A command that fails outside a check (set -e), in a function too, says where.
set -E
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
fresh_namespace natrix-op-jsroll
NS=$TEST_NS
install_operator "$NS"
# The Stream's finalizer needs the operator: delete it before the operator goes.
# shellcheck disable=SC2064 # expanded now, on purpose: NS is fixed for this trap
trap "kubectl -n '$NS' delete streams --all --wait --timeout=60s >/dev/null 2>&1 || true; helm uninstall natrix -n '$NS' --wait --timeout 60s >/dev/null 2>&1 || true; kubectl delete namespace '$NS' --wait=false >/dev/null 2>&1 || true" EXIT
hostpath_pvs "$NS" 3 1Gi
work=$(mktemp -d)
on_exit "rm -rf '$work'"

NC=js
# Each pod-proxy read bounded: a pod that is going away may not answer at all.
MONITOR_TIMEOUT=3s
PODS="js-0 js-1 js-2"
SERVER=nats://$NC.$NS.svc.cluster.local:4222
STREAM=ROLL
SUBJECT=roll.msgs
STOP=e2e.roll.stop
JS_SPEC="  jetstream:
    enabled: true
    fileStorage: {size: 1Gi, storageClassName: $E2E_STORAGE_CLASS}"

# job_ended NAME: the Job is Complete or Failed.
job_ended() {
  kubectl -n "$NS" get job "$1" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' 2>/dev/null |
    grep -qwE 'Complete|Failed'
}
job_complete() {
  kubectl -n "$NS" get job "$1" -o jsonpath='{.status.conditions[?(@.status=="True")].type}' 2>/dev/null |
    grep -qw Complete
}
# ready KIND NAME: the resource's Ready condition is True for its current generation.
ready() { cr_ready "$NS" "$1" "$2"; }
# js_stream POD: the stream as POD's /jsz shows it (compact JSON; empty if not there).
js_stream() {
  monitor "$NS" "$1" 'jsz?streams=true' 2>/dev/null |
    jq -c --arg s "$STREAM" '[.account_details[]?.stream_detail[]? | select(.name == $s)][0] // empty' 2>/dev/null
}
# state POD: "messages first_seq last_seq" of the stream on POD.
state() { js_stream "$1" | jq -r '"\(.state.messages) \(.state.first_seq) \(.state.last_seq)"'; }
# claims: "name uid phase volume" of the NatsCluster's claims.
claims() {
  kubectl -n "$NS" get pvc -l "app.kubernetes.io/instance=$NC" \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.status.phase} {.spec.volumeName}{"\n"}{end}' | sort
}
# pv_dir CLAIM: the host directory of the volume bound to CLAIM.
pv_dir() {
  local pv
  pv=$(kubectl -n "$NS" get pvc "$1" -o jsonpath='{.spec.volumeName}')
  kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}'
}
# store_file POD: "inode bytes last-write" of the stream's file store on POD's volume
# (its database and write-ahead log, as the server lays them out under /data/jetstream,
# seen from this host): the database's inode, the bytes of both, the newest write.
store_file() {
  local dir ino bytes last
  dir="$(pv_dir "data-$1")/jetstream/jetstream/\$G/streams/$STREAM"
  ino=$(stat -c %i "$dir/stream.redb") || return 1
  bytes=$(du -sb "$dir" | cut -f1)
  last=$(find "$dir" -type f -printf '%T@\n' | sort -n | tail -n1)
  echo "$ino $bytes $last"
}

# --- The cluster on PersistentVolumes, and an R3 file stream.
t0=$(now)
natscluster "$NS" "$NC" 3 "$JS_SPEC"
wait_until 240 "NatsCluster $NC Ready" nc_ready "$NS" "$NC"
up_s=$(since "$t0")
claims_before=$(claims)
[ "$(grep -c ' Bound ' <<<"$claims_before")" = 3 ] || fail "expected 3 Bound claims: $claims_before"
before=$(pods_of "$NS" "$NC")

kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: natrix.io/v1alpha1
kind: Stream
metadata:
  name: roll
spec:
  natsClusterRef: {name: $NC}
  name: $STREAM
  subjects: ["$SUBJECT"]
  storage: file
  replicas: 3
  duplicateWindow: 2m
YAML
wait_until 90 "Stream roll Ready" ready stream roll
for p in $PODS; do
  [ -n "$(js_stream "$p")" ] || fail "$p's /jsz does not list stream $STREAM"
done

# --- The publisher, through the client Service; stopped by a message on $STOP after
# the roll (bounded by its deadlines whatever happens).
pub_args=$(printf '"%s",' js-pub --server "$SERVER" --stream "$STREAM" --subject "$SUBJECT" \
  --count 200000 --interval-ms 20 --out-deadline 480 --stop-subject "$STOP")
client_job js-pub "[${pub_args%,}]" 500
stored_some() { [ "$(state js-0 | cut -d' ' -f1)" -ge 200 ]; }
wait_until 90 "the publisher's first 200 messages in the stream" stored_some

# --- Watch the pods (each event stamped with the time it arrived) and sample their
# health and the stream leader's view of its replicas.
mkfifo "$work/watch.fifo"
kubectl -n "$NS" get pods -l "app.kubernetes.io/instance=$NC" --watch --request-timeout=500s -o \
  jsonpath='{.metadata.name}|{.metadata.uid}|{.status.conditions[?(@.type=="Ready")].status}|{.metadata.deletionTimestamp}{"\n"}' \
  >"$work/watch.fifo" 2>/dev/null &
watch_pid=$!
while IFS= read -r l; do echo "$(now)|$l"; done <"$work/watch.fifo" >"$work/watch" &
stamp_pid=$!
on_exit "kill $watch_pid $stamp_pid 2>/dev/null || true"

# probe POD: "POD HEALTH LEADER VIEW": /healthz (ok or bad), the stream's leader as POD
# sees it, and when POD is that leader its replicas as name=current/lag. Each is read
# up to three times within half a second while it is not ok: a publish in flight
# between leader and followers is not a replica that fell behind.
probe() {
  local pod=$1 health=bad leader=- view=- s _
  for _ in 1 2 3; do
    if monitor "$NS" "$pod" healthz 2>/dev/null | grep -q '"status": *"ok"'; then
      health=ok
      break
    fi
    sleep 0.15
  done
  for _ in 1 2 3; do
    s=$(js_stream "$pod") || s=
    leader=$(jq -r '.cluster.leader // "-"' <<<"${s:-null}" 2>/dev/null) || leader=-
    view=$(jq -r '[.cluster.replicas[]? | "\(.name)=\(.current)/\(.lag // 0)"] | join(",")' <<<"${s:-null}" 2>/dev/null) || view=
    [ -n "$leader" ] || leader=-
    [ -n "$view" ] || view=-
    if [ "$leader" != - ] && { [ "$leader" != "$pod" ] || ! grep -q '=false' <<<"$view"; }; then
      break
    fi
    sleep 0.15
  done
  echo "$pod $health $leader $view"
}
# sample: one round, appended to samples as "START END POD HEALTH LEADER VIEW" lines.
sample() {
  local start p pids=()
  start=$(now)
  for p in $PODS; do
    probe "$p" >"$work/probe.$p" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  local end
  end=$(now)
  for p in $PODS; do echo "$start $end $(cat "$work/probe.$p")"; done >>"$work/samples"
}

# --- The roll: a change natrix-server cannot reload.
sample
for p in $PODS; do
  read -r m f l <<<"$(state "$p")"
  echo "$p $m $f $l" >>"$work/state.before"
  f=$(store_file "$p") || fail "no file store for $STREAM on $p's volume"
  echo "$p $f" >>"$work/store.before"
done
# The old pods' logs to their end, for how each one stopped.
log_pids=""
for p in $PODS; do
  kubectl -n "$NS" logs -f "$p" --request-timeout=500s >"$work/old.$p.log" 2>&1 &
  log_pids="$log_pids $!"
done
on_exit "kill $log_pids 2>/dev/null || true"
old_revision=$(kubectl -n "$NS" get sts "$NC" -o jsonpath='{.status.updateRevision}')
t_roll=$(now)
natscluster "$NS" "$NC" 3 "$JS_SPEC
  config:
    maxSubscriptions: 1000"
rolled() {
  local s cur upd ready updated
  s=$(kubectl -n "$NS" get sts "$NC" -o \
    jsonpath='{.status.currentRevision} {.status.updateRevision} {.status.readyReplicas} {.status.updatedReplicas}')
  read -r cur upd ready updated <<<"$s"
  [ "$upd" != "$old_revision" ] && [ "$cur" = "$upd" ] && [ "$ready" = 3 ] && [ "$updated" = 3 ]
}
deadline=$(($(date +%s) + 420))
until rolled; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    cat "$work/watch" >&2
    fail "the StatefulSet did not roll within 420s"
  fi
  sample
  sleep 0.5
done
roll_s=$(since "$t_roll")
wait_until 60 "NatsCluster Ready after the roll" nc_ready "$NS" "$NC"
roll_ready_s=$(since "$t_roll")
kill "$watch_pid" 2>/dev/null || true
# shellcheck disable=SC2086 # a list of pids
kill $log_pids 2>/dev/null || true
# Each old server went through lame duck (the preStop hook's signal) before the kubelet's
# SIGTERM, and exited by itself.
stops=""
for p in $PODS; do
  life=$(sed 's/\x1b\[[0-9;]*m//g' "$work/old.$p.log" |
    grep -E 'Entering lame duck|Trapped|Initiating Shutdown|Server Exiting' | tail -n 6 || true)
  first=$(head -n1 <<<"$life")
  [[ "$first" == *"Entering lame duck"* ]] && grep -q 'Server Exiting' <<<"$life" ||
    fail "the old $p did not stop through lame duck:
$life"
  # [1] YYYY/MM/DD HH:MM:SS.micro: seconds from entering lame duck to exiting.
  stops="$stops $p $(awk '/Entering lame duck/ && !a { a = $3 } /Server Exiting/ { e = $3 }
    function s(t, p) { split(t, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
    END { printf "%.1f", s(e) - s(a) }' <<<"$life")s,"
done

# --- Each deletion against the last sample before it.
after=$(pods_of "$NS" "$NC")
report=""
timings=""
prev_ready=""
declare -A ready_at created_at
for p in js-2 js-1 js-0; do
  old_uid=$(grep "^$p " <<<"$before" | cut -d' ' -f2)
  new_uid=$(grep "^$p " <<<"$after" | cut -d' ' -f2)
  [ -n "$new_uid" ] && [ "$new_uid" != "$old_uid" ] || fail "$p was not replaced ($old_uid -> $new_uid)"
  # Arrival of the first event showing the old pod with a deletionTimestamp.
  t_del=$(awk -F'|' -v u="$old_uid" '$3 == u && $5 != "" { print $1; exit }' "$work/watch")
  [ -n "$t_del" ] || { cat "$work/watch" >&2; fail "the watch never saw $p ($old_uid) deleted"; }
  t_ready=$(awk -F'|' -v u="$new_uid" '$3 == u && $4 == "True" { print $1; exit }' "$work/watch")
  [ -n "$t_ready" ] || { cat "$work/watch" >&2; fail "the watch never saw the new $p ($new_uid) Ready"; }
  ready_at[$p]=$t_ready
  created_at[$p]=$(awk -F'|' -v u="$new_uid" '$3 == u { print $1; exit }' "$work/watch")
  # The last sampling round that ended before the deletion.
  end=$(awk -v t="$t_del" '$2 < t { e = $2 } END { print e }' "$work/samples")
  [ -n "$end" ] || fail "no sample before $p's deletion"
  round=$(awk -v e="$end" '$2 == e' "$work/samples")
  leader_line=$(awk '$3 == $5' <<<"$round" | head -n1)
  leader=$(cut -d' ' -f3 <<<"$leader_line")
  view=$(cut -d' ' -f6 <<<"$leader_line")
  seen=""
  for q in $PODS; do
    [ "$q" = "$p" ] && continue
    health=$(awk -v q="$q" '$3 == q { print $4 }' <<<"$round")
    if [ "$q" = "$leader" ]; then
      cur="leader"
    elif grep -qE "(^|,)$q=true/" <<<"$view"; then
      cur="current (lag $(grep -oE "(^|,)$q=true/[0-9]+" <<<"$view" | sed 's/.*\///'))"
    else
      cur="NOT current (leader ${leader:-none}: ${view:-no view})"
    fi
    seen="$seen $q health $health, $cur;"
    if [ "$health" != ok ] || [[ "$cur" == NOT* ]]; then
      echo "--- samples" >&2
      cat "$work/samples" >&2
      echo "--- watch" >&2
      cat "$work/watch" >&2
      fail "$p was deleted at $t_del while $q was not caught up (sample ended $end):$seen"
    fi
  done
  # One at a time: this pod went only after the one replaced before it was Ready.
  if [ -n "$prev_ready" ] && awk -v a="$t_del" -v b="$prev_ready" 'BEGIN { exit !(a < b) }'; then
    fail "$p was deleted at $t_del, before the previous replacement was Ready at $prev_ready"
  fi
  prev_ready=$t_ready
  gap=$(awk -v a="$t_del" -v b="$end" 'BEGIN { printf "%.1f", a - b }')
  report="$report
roll: $p deleted at +$(awk -v a="$t_del" -v b="$t_roll" 'BEGIN { printf "%.1f", a - b }')s; ${gap}s before:$seen"
  # The first round (after the new pod was created) that saw it caught up: healthy, and
  # the leader or current in the leader's view.
  caught=$(awk -v p="$p" -v c="${created_at[$p]}" '
    $1 >= c && !($2 in start) { start[$2] = $1; order[++n] = $2 }
    $1 >= c && $3 == p { health[$2] = $4 }
    $1 >= c && $3 == $5 { leader[$2] = $5; view[$2] = $6 }
    END {
      for (i = 1; i <= n; i++) {
        e = order[i]
        if (health[e] == "ok" && (leader[e] == p || view[e] ~ ("(^|,)" p "=true/"))) { print start[e]; exit }
      }
    }' "$work/samples")
  timings="$timings $p $(awk -v d="$t_del" -v c="${created_at[$p]}" -v r="$t_ready" -v h="$caught" \
    'BEGIN { printf "%.1fs (%.1fs until the new pod, %.1fs from it to Ready; ", r - d, c - d, r - c
             if (h == "") printf "not sampled caught up before the roll ended)"; else printf "sampled caught up %.1fs after creation)", h - c }'),"
done

# --- Same claims, same volumes.
claims_after=$(claims)
[ "$claims_after" = "$claims_before" ] || fail "claims changed in the roll: before
$claims_before
after
$claims_after"

# --- Messages flow on the new pods; then stop the publisher.
last_roll=$(state js-0 | cut -d' ' -f3)
flowing() { [ "$(state js-0 | cut -d' ' -f3)" -ge $((last_roll + 100)) ]; }
wait_until 60 "the publisher's messages stored after the roll" flowing
for i in 1 2 3 4 5; do
  natscli_job "$NS" "stop-$i" "[\"--server\", \"$SERVER\", \"pub\", \"$STOP\", \"stop\"]" 30
  for _ in $(seq 1 20); do
    job_ended js-pub && break 2
    sleep 1
  done
done
job_ended js-pub || fail "the publisher did not end after five stop messages"
pub_log=$(kubectl -n "$NS" logs job/js-pub)
summary=$(grep '^acked=' <<<"$pub_log" | tail -n1)
[ -n "$summary" ] || fail "no summary from the publisher: $(tail -n 20 <<<"$pub_log")"
job_complete js-pub || fail "the publisher failed: $(tail -n 20 <<<"$pub_log")"
acked=$(sed -E 's/^acked=([0-9]+).*/\1/' <<<"$summary")
longest=$(sed -E 's/.*longest_unacked_ms=([0-9]+).*/\1/' <<<"$summary")
errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$summary")
episodes=$(grep -c '^ack n=' <<<"$pub_log" || true)
echo "--- publisher (ack failures, events, summary; at= as seconds since the roll began)"
grep -E '^(ack n=|unacked|event|stop|acked=)' <<<"$pub_log" | grep -v 'IO error' |
  awk -v t="$t_roll" '{ for (i = 1; i <= NF; i++) if ($i ~ /^at=[0-9.]+:?$/) { c = ($i ~ /:$/) ? ":" : ""; sub(/^at=/, "", $i); $i = sprintf("at=%+.1fs%s", $i - t, c) } print }' | tail -n 40

# --- Every acknowledged number in the stream once, in order; every replica alike.
client_job js-check "[\"js-check\", \"--server\", \"$SERVER\", \"--stream\", \"$STREAM\", \"--expect\", \"$acked\"]" 150
wait_until 160 "js-check ending" job_ended js-check
check_log=$(kubectl -n "$NS" logs job/js-check)
echo "--- js-check"
echo "$check_log"
job_complete js-check || fail "acknowledged messages lost or duplicated: $(grep '^present=' <<<"$check_log")"
check=$(grep '^present=' <<<"$check_log")
stream_line=$(grep '^stream=' <<<"$check_log")
msgs=$(sed -E 's/.* messages=([0-9]+).*/\1/' <<<"$stream_line")
alike() {
  local p m f l
  for p in $PODS; do
    read -r m f l <<<"$(state "$p")"
    [ "$f" = 1 ] && [ "$m" = "$msgs" ] && [ "$l" = "$msgs" ] || return 1
  done
}
wait_until 30 "every replica holding the $msgs messages" alike
states=""
for p in $PODS; do
  read -r m f l <<<"$(grep "^$p " "$work/state.before" | cut -d' ' -f2-)"
  read -r m2 f2 l2 <<<"$(state "$p")"
  [ "$m2" -ge "$m" ] && [ "$f2" = "$f" ] || fail "$p: stream state $m2 $f2 $l2 after the roll, $m $f $l before"
  states="$states $p $m -> $m2,"
done

# --- The pods came back on their volumes: the stream's file store on each volume is the
# one that was there before the roll (same database file), and it was written after the
# new pod was created, that is by the restarted server (the StatefulSet creates the new
# pod once the old one's containers are gone).
reused=""
for p in $PODS; do
  read -r ino bytes _ <<<"$(grep "^$p " "$work/store.before" | cut -d' ' -f2-)"
  read -r ino2 bytes2 mtime2 <<<"$(store_file "$p")"
  [ "$ino2" = "$ino" ] || fail "$p: the stream's file store on its volume is a new file (inode $ino -> $ino2)"
  awk -v m="$mtime2" -v c="${created_at[$p]}" 'BEGIN { exit !(m > c) }' ||
    fail "$p: its file store was last written at $mtime2, before the new pod was created at ${created_at[$p]}"
  # (the log's fields carry colour escapes)
  caught=$(kubectl -n "$NS" logs "$p" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' |
    grep -oE 'caught up from the leader.*messages=[0-9]+' | grep -oE '[0-9]+$' | head -n1 || true)
  reused="$reused $p inode $ino, $bytes -> $bytes2 bytes, ${caught:-no} messages copied from the leader,"
done

echo "roll: claims $(awk '{ printf "%s->%s ", $1, $4 }' <<<"$claims_after")Bound before and after (same claim UIDs)$report"
echo "roll: file stores reused:${reused%,}"
echo "roll: stream messages per pod, before the roll -> after the publisher ended:${states%,}"
echo "timing: JetStream NatsCluster (3 pods, 1Gi hostPath volumes) apply -> Ready: ${up_s}s"
echo "timing: restart-needed change (maxSubscriptions) apply -> 3 pods replaced and Ready: ${roll_s}s (NatsCluster Ready ${roll_ready_s}s)"
echo "timing: pod deleted -> Ready again:${timings%,}"
echo "timing: old server, lame duck entered -> exited:${stops%,}"
echo "timing: longest wait for a publish ack: ${longest}ms ($episodes ack-wait episodes, $errors failed attempts)"
echo "jsroll: $acked acknowledged messages (20 ms apart, through the Service, across the roll): $check; $msgs in the stream on every replica"
