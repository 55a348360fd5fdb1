#!/usr/bin/env bash
# Traces through the operator: a Jaeger on the node is the OTLP receiver. The operator
# exports a span per reconcile; `kubectl patch` adds spec.tracing to a running
# NatsCluster, which reaches every pod by live reload (no pod restarts); then a client
# in the cluster publishes through the client Service with a sampled traceparent and a
# subscriber continues the trace. The test finds, in Jaeger, one trace running from the
# client's publish through the broker's natrix.publish span to the subscriber's receive,
# and the operator's reconcile span for the generation that configured tracing.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-trace
NS=$TEST_NS
NODE_IP=10.244.0.1
OTLP_PORT=24317
QUERY_PORT=26686

# Jaeger (built by scripts/deps) on the node: OTLP/gRPC on the bridge address the pods
# reach, its query API on loopback for this script.
JAEGER=$CACHE/bin/jaeger
[ -x "$JAEGER" ] || fail "jaeger not installed (scripts/deps builds it into $CACHE/bin)"
jdir=$(mktemp -d)
cat >"$jdir/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:$QUERY_PORT
    grpc:
      endpoint: 127.0.0.1:$((QUERY_PORT + 1))
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $NODE_IP:$OTLP_PORT
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
YAML
"$JAEGER" --config "$jdir/jaeger.yaml" >"$jdir/jaeger.log" 2>&1 &
jaeger_pid=$!
on_exit "kill $jaeger_pid 2>/dev/null || true; wait $jaeger_pid 2>/dev/null || true; rm -rf '$jdir'"
jaeger_up() { curl -fsS "http://127.0.0.1:$QUERY_PORT/api/services" >/dev/null 2>&1; }
wait_until 30 "jaeger answering on 127.0.0.1:$QUERY_PORT" jaeger_up
ENDPOINT=http://$NODE_IP:$OTLP_PORT

install_operator "$NS" --set tracing.endpoint="$ENDPOINT" --set tracing.serviceName=natrix-operator-e2e
natscluster "$NS" traced 3
wait_until 180 "NatsCluster traced Ready" nc_ready "$NS" traced
before=$(pods_of "$NS" traced)

# Tracing on, by a patch: a reload, not a restart.
kubectl -n "$NS" patch natscluster traced --type merge -p \
  "{\"spec\":{\"tracing\":{\"endpoint\":\"$ENDPOINT\",\"serviceName\":\"natrix-e2e\",\"sampleRatio\":0}}}" >/dev/null
gen=$(kubectl -n "$NS" get natscluster traced -o jsonpath='{.metadata.generation}')
t0=$(now)
wait_until 120 "NatsCluster traced Ready on generation $gen" nc_ready "$NS" traced
reload_s=$(since "$t0")
[ "$(pods_of "$NS" traced)" = "$before" ] || fail "pods restarted for the tracing change:
before: $before
after: $(pods_of "$NS" traced)"
for p in traced-0 traced-1 traced-2; do
  monitor "$NS" "$p" varz | grep -q "\"config_digest\": *\"$(kubectl -n "$NS" get natscluster traced -o jsonpath='{.status.configDigest}')\"" ||
    fail "$p does not run the config with tracing"
done

# A traced publish through the client Service; the subscriber continues the trace.
client_job trace "[\"trace\", \"--server\", \"nats://traced.$NS.svc.cluster.local:4222\", \"--endpoint\", \"$ENDPOINT\", \"--subject\", \"e2e.traced\", \"--service-name\", \"e2e-client\"]" 60
kubectl -n "$NS" wait --for=condition=Complete job/trace --timeout=90s >/dev/null ||
  fail "trace client did not complete: $(kubectl -n "$NS" logs job/trace 2>&1 | tail -n 5)"
out=$(kubectl -n "$NS" logs job/trace)
echo "$out"
field() { sed -n "s/.*\\b$1=\\([0-9a-f]*\\).*/\\1/p" <<<"$out" | head -n1; }
trace_id=$(field trace_id)
publish_span=$(field publish_span)
broker_span=$(field broker_span)
receive_span=$(field receive_span)
[ ${#trace_id} = 32 ] || fail "no trace id from the client: $out"

# The whole chain in Jaeger: client.publish -> natrix.publish (natrix-e2e) -> client.receive.
trace_json=$jdir/trace.json
complete() {
  curl -fsS "http://127.0.0.1:$QUERY_PORT/api/traces/$trace_id" >"$trace_json" 2>/dev/null || return 1
  [ "$(jq '.data[0].spans | length' "$trace_json")" -ge 3 ]
}
wait_until 60 "trace $trace_id complete in jaeger" complete
span() { jq -r --arg id "$1" '.data[0] as $t | $t.spans[] | select(.spanID == $id) | "\(.operationName) \($t.processes[.processID].serviceName) \([.references[]? | select(.refType == "CHILD_OF") | .spanID] | join(","))"' "$trace_json"; }
read -r op svc parent <<<"$(span "$broker_span")"
[ "$op $svc $parent" = "natrix.publish natrix-e2e $publish_span" ] ||
  fail "broker span $broker_span: '$op $svc $parent', want 'natrix.publish natrix-e2e $publish_span'"
read -r op svc parent <<<"$(span "$receive_span")"
[ "$op $svc $parent" = "client.receive e2e-client $broker_span" ] ||
  fail "receive span $receive_span: '$op $svc $parent', want 'client.receive e2e-client $broker_span'"
read -r op svc _ <<<"$(span "$publish_span")"
[ "$op $svc" = "client.publish e2e-client" ] || fail "publish span $publish_span: '$op $svc'"

# The operator's reconcile of the generation that turned tracing on.
# The reconcile spans of NatsCluster traced at generation $gen (tag values compared as
# text: the generation is an integer attribute).
gen_spans='[.data[].spans[] | select(any(.tags[]; .key == "natrix.natscluster.generation" and (.value | tostring) == $g))]'
reconciled() {
  curl -fsS -G "http://127.0.0.1:$QUERY_PORT/api/traces" \
    --data-urlencode service=natrix-operator-e2e --data-urlencode operation=reconcile \
    --data-urlencode 'tags={"natrix.natscluster.name":"traced"}' \
    --data-urlencode limit=200 >"$jdir/reconciles.json" 2>/dev/null || return 1
  [ "$(jq --arg g "$gen" "$gen_spans | length" "$jdir/reconciles.json")" -ge 1 ]
}
wait_until 60 "the operator's reconcile span of generation $gen in jaeger" reconciled
outcome=$(jq -r --arg g "$gen" "$gen_spans | map(.tags[] | select(.key == \"natrix.reconcile.outcome\") | .value) | first" "$jdir/reconciles.json")
[ "$outcome" = ok ] || fail "reconcile span of generation $gen: outcome $outcome"

echo "timing: spec.tracing patch -> every pod on the new config (live reload): ${reload_s}s"
echo "tracing: operator reconcile span (generation $gen) and one trace client.publish -> natrix.publish -> client.receive ($trace_id) in the e2e's Jaeger"
