#!/usr/bin/env bash
# The operator from its Helm chart: a 3-replica NatsCluster becomes Ready, its servers
# route to each other (each pod's /routez, read through the API server's pod proxy), and
# a client reaches the cluster through the client Service.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op
NS=$TEST_NS
install_operator "$NS"

natscluster "$NS" nats 3
kubectl -n "$NS" wait --for=condition=Ready natscluster/nats --timeout=180s >/dev/null ||
  fail "NatsCluster did not become Ready"

for i in 0 1 2; do
  routes=""
  for _ in $(seq 1 30); do
    routes=$(kubectl get --raw "/api/v1/namespaces/$NS/pods/nats-$i:8222/proxy/routez" 2>/dev/null || true)
    grep -q '"num_routes": 2' <<<"$routes" && break
    sleep 1
  done
  grep -q '"num_routes": 2' <<<"$routes" || fail "pod nats-$i has not routed to both peers: $routes"
done

# Started the moment the Service has endpoints, the client can miss them on a loaded
# machine ("no servers available"): two more tries within the deadline.
natscli_job "$NS" client "[\"--server\", \"nats://nats.$NS.svc.cluster.local:4222\", \"bench\", \"pub\", \"op.check\", \"--msgs\", \"1000\", \"--no-progress\"]" 60 2
kubectl -n "$NS" wait --for=condition=Complete job/client --timeout=60s >/dev/null ||
  fail "client Job through the cluster Service did not complete"
out=$(kubectl -n "$NS" logs job/client)
grep -q 'msgs/sec' <<<"$out" || fail "client Job output: $out"
echo "operator: NatsCluster of 3 Ready, every pod routed to 2 peers, a client published through the Service"
