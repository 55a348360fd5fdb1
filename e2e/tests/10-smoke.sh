#!/usr/bin/env bash
# Smoke test: natrix-server from the local image behind a Service; NATS clients (natscli in
# its own image) in other pods reach it through the Service's DNS name and exchange
# messages: request/reply, and publish/subscribe of a counted batch.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-smoke
NS=$TEST_NS
SERVER=nats://natrix.$NS.svc.cluster.local:4222
NATS_IMAGE=$(image natscli "$(natscli_version)")

kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: natrix
  labels: {app: natrix}
spec:
  containers:
    - name: natrix-server
      image: $(image natrix-server)
      imagePullPolicy: Never
      args: ["-a", "0.0.0.0", "-p", "4222"]
      ports: [{name: client, containerPort: 4222}]
      readinessProbe:
        tcpSocket: {port: 4222}
        periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: natrix
spec:
  selector: {app: natrix}
  ports: [{name: client, port: 4222, targetPort: 4222}]
YAML
kubectl -n "$NS" wait --for=condition=Ready pod/natrix --timeout=90s >/dev/null ||
  fail "natrix-server pod not Ready"

# A pod that answers requests on smoke.echo with a fixed body, and one that subscribes for 5 messages.
client_pod() { # NAME ARGS-JSON
  kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $1
spec:
  # The Service may not forward yet when the server pod turns Ready (kube-proxy writes
  # its rules a moment later) and the nats CLI does not retry its first connection:
  # the kubelet starts it again.
  restartPolicy: OnFailure
  containers:
    - name: nats
      image: $NATS_IMAGE
      imagePullPolicy: Never
      env: [{name: HOME, value: /tmp}]
      args: $2
YAML
}
client_pod replier "[\"--server\", \"$SERVER\", \"reply\", \"smoke.echo\", \"pong-from-natrix\"]"
client_pod subscriber "[\"--server\", \"$SERVER\", \"sub\", \"smoke.batch\", \"--count\", \"5\"]"
wait_log "$NS" replier 'Listening on' 60
wait_log "$NS" subscriber 'Subscribing on' 60

# Jobs: one request through the replier, then a batch of 5 publishes.
natscli_job "$NS" requester "[\"--server\", \"$SERVER\", \"request\", \"smoke.echo\", \"hello-natrix\", \"--timeout\", \"5s\"]"
kubectl -n "$NS" wait --for=condition=Complete job/requester --timeout=60s >/dev/null ||
  fail "request Job did not complete"
# Capture first: `grep -q` stops reading at the first match, and under pipefail the
# writer's SIGPIPE would fail the pipeline although the reply was there.
reply=$(kubectl -n "$NS" logs job/requester)
grep -q 'pong-from-natrix' <<<"$reply" ||
  fail "request Job did not print the reply: $reply"

natscli_job "$NS" publisher "[\"--server\", \"$SERVER\", \"pub\", \"smoke.batch\", \"message {{Count}}\", \"--count\", \"5\"]"
kubectl -n "$NS" wait --for=condition=Complete job/publisher --timeout=60s >/dev/null ||
  fail "publish Job did not complete"
for _ in $(seq 1 30); do
  phase=$(kubectl -n "$NS" get pod subscriber -o jsonpath='{.status.phase}')
  [ "$phase" = Succeeded ] && break
  [ "$phase" = Failed ] && fail "subscriber pod failed"
  sleep 1
done
[ "$phase" = Succeeded ] || fail "subscriber did not receive 5 messages within 30s"
got=$(kubectl -n "$NS" logs subscriber | grep -cE 'message [1-5]$' || true)
[ "$got" = 5 ] || fail "subscriber printed $got of 5 messages"
echo "smoke: request/reply and 5 published messages went through $SERVER"
