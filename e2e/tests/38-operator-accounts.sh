#!/usr/bin/env bash
# Accounts and Users through the operator: two Accounts on a 3-replica NatsCluster, which
# restarts into operator mode; Users' .creds Secrets mounted by Jobs running the nats CLI
# get exactly their permissions; a stream export/import between the Accounts delivers;
# deleting a User closes its connection on the servers without restarting them.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-op-acct
NS=$TEST_NS
install_operator "$NS"
# Users and Accounts carry finalizers the operator removes: delete them before it goes.
# shellcheck disable=SC2064 # expanded now, on purpose: NS is fixed for this trap
trap "kubectl -n '$NS' delete users,accounts --all --wait --timeout=60s >/dev/null 2>&1 || true; helm uninstall natrix -n '$NS' --wait --timeout 60s >/dev/null 2>&1 || true; kubectl delete namespace '$NS' --wait=false >/dev/null 2>&1 || true" EXIT

natscluster "$NS" acct 3
wait_until 180 "NatsCluster acct Ready" nc_ready "$NS" acct
URL="nats://acct.$NS.svc.cluster.local:4222"

# ready KIND NAME: the resource's Ready condition is True for its current generation.
ready() { cr_ready "$NS" "$1" "$2"; }

t0=$(now)
kubectl -n "$NS" apply -f - >/dev/null <<YAML || fail "Accounts and Users refused by the API server"
apiVersion: natrix.io/v1alpha1
kind: Account
metadata: {name: partner}
spec:
  natsClusterRef: {name: acct}
  exports: [{name: prices, subject: "prices.>"}]
---
apiVersion: natrix.io/v1alpha1
kind: Account
metadata: {name: app}
spec:
  natsClusterRef: {name: acct}
  signingKeys: [{name: k1}]
  limits: {connections: 100}
  imports: [{accountRef: {name: partner}, subject: "prices.>", localSubject: "feed.>"}]
---
apiVersion: natrix.io/v1alpha1
kind: User
metadata: {name: alice}
spec:
  accountRef: {name: app}
  permissions:
    publish: {allow: ["orders.>"]}
    subscribe: {allow: ["orders.>", "_INBOX.>"]}
---
apiVersion: natrix.io/v1alpha1
kind: User
metadata: {name: bob}
spec:
  accountRef: {name: app}
  permissions:
    publish: {allow: ["audit.>", "_INBOX.>"]}
    subscribe: {allow: ["orders.>", "_INBOX.>"]}
---
apiVersion: natrix.io/v1alpha1
kind: User
metadata: {name: watcher}
spec:
  accountRef: {name: app}
---
apiVersion: natrix.io/v1alpha1
kind: User
metadata: {name: feeder}
spec:
  accountRef: {name: partner}
YAML
for r in account/partner account/app user/alice user/bob user/watcher user/feeder; do
  wait_until 240 "$r Ready" ready "${r%/*}" "${r#*/}"
done
wait_until 240 "NatsCluster acct Ready in operator mode" nc_ready "$NS" acct
ready_s=$(since "$t0")
echo "--- kubectl get (printer columns)"
kubectl -n "$NS" get accounts,users -o wide
kubectl -n "$NS" get configmap acct-config -o jsonpath='{.data.nats\.conf}' | grep -q '^resolver = {' ||
  fail "nats.conf of acct is not in operator mode"

# The JWTs as nsc reads them: the account JWT from the Account's status and the user JWT
# from alice's .creds Secret, each decoded and verified by `nsc describe jwt` on the node.
NSC=${NSC_BIN:-$CACHE/bin/nsc}
[ -x "$NSC" ] || fail "nsc not installed (scripts/deps builds it into $CACHE/bin)"
nsc_dir=$(mktemp -d)
on_exit "rm -rf '$nsc_dir'"
nsc_describe() {
  NSC_HOME=$nsc_dir/home NKEYS_PATH=$nsc_dir/keys NSC_NO_GIT_IGNORE=1 \
    "$NSC" describe jwt -f "$1" --all-dirs "$nsc_dir/store" 2>&1
}
kubectl -n "$NS" get account app -o jsonpath='{.status.jwt}' >"$nsc_dir/app.jwt"
kubectl -n "$NS" get secret alice-creds -o jsonpath='{.data.user\.creds}' | base64 -d |
  sed -n '/BEGIN NATS USER JWT/,/END NATS USER JWT/p' | grep -v -- '-----' >"$nsc_dir/alice.jwt"
app_key=$(kubectl -n "$NS" get account app -o jsonpath='{.status.publicKey}')
alice_key=$(kubectl -n "$NS" get user alice -o jsonpath='{.status.publicKey}')
out=$(nsc_describe "$nsc_dir/app.jwt") || fail "nsc describe of account app's JWT failed: $out"
grep -q "$app_key" <<<"$out" || fail "nsc does not show account app's key $app_key: $out"
grep -q "feed.>" <<<"$out" || fail "nsc does not show app's import: $out"
out=$(nsc_describe "$nsc_dir/alice.jwt") || fail "nsc describe of alice's JWT failed: $out"
grep -q "$alice_key" <<<"$out" || fail "nsc does not show alice's key $alice_key: $out"
grep -q "orders.>" <<<"$out" || fail "nsc does not show alice's permissions: $out"
echo "nsc describe jwt: account app and user alice decode and verify"

running() { [ "$(kubectl -n "$NS" get pods -l "job-name=$1" -o jsonpath='{.items[0].status.phase}')" = Running ]; }
done_ok() {
  kubectl -n "$NS" wait --for=condition=Complete "job/$1" --timeout="${2:-90}s" >/dev/null ||
    fail "job $1 did not complete: $(kubectl -n "$NS" logs "job/$1" 2>&1 | tail -n 5)"
  kubectl -n "$NS" logs "job/$1"
}

# Permissions: the watcher (no restrictions) sees exactly what each user may publish.
creds_job watch-1 watcher 120 sub ">" --count 2
wait_until 60 "watcher subscribed" running watch-1
sleep 3
creds_job alice-pub alice 60 pub orders.1 from-alice
creds_job bob-pub-denied bob 60 pub orders.bob not-allowed
creds_job alice-pub-denied alice 60 pub audit.alice not-allowed
done_ok alice-pub >/dev/null
kubectl -n "$NS" wait --for=condition=Complete job/bob-pub-denied job/alice-pub-denied --timeout=60s >/dev/null 2>&1 || true
sleep 2
creds_job bob-pub bob 60 pub audit.2 from-bob
done_ok bob-pub >/dev/null
seen=$(done_ok watch-1 60)
grep -q "orders.1" <<<"$seen" || fail "watcher did not get alice's orders.1: $seen"
grep -q "audit.2" <<<"$seen" || fail "watcher did not get bob's audit.2: $seen"
grep -qE "orders.bob|audit.alice" <<<"$seen" && fail "a denied publish was delivered: $seen"
# A denied subscription is refused by the server in its words.
creds_job alice-sub-denied alice 30 sub "audit.>" --count 1 --timeout 5s
kubectl -n "$NS" wait --for=condition=Complete job/alice-sub-denied --timeout=40s >/dev/null 2>&1 || true
kubectl -n "$NS" logs job/alice-sub-denied 2>&1 | grep -qi "permissions violation" ||
  fail "alice's subscription to audit.> was not refused: $(kubectl -n "$NS" logs job/alice-sub-denied 2>&1 | tail -n 3)"

# Export/import: partner's prices.* arrive in app as feed.*.
creds_job watch-feed watcher 120 sub "feed.>" --count 1
wait_until 60 "feed watcher subscribed" running watch-feed
sleep 3
creds_job feeder-pub feeder 60 pub prices.eur 1.08
done_ok feeder-pub >/dev/null
seen=$(done_ok watch-feed 60)
grep -q "feed.eur" <<<"$seen" || fail "import did not deliver prices.eur as feed.eur: $seen"

# A permission change: alice's JWT is re-issued with the same key and her earlier
# credentials are revoked, so the connection she opened with the old permissions is
# closed by the servers (a reconnect with the same key is a new connection).
alice_key=$(kubectl -n "$NS" get user alice -o jsonpath='{.status.publicKey}')
creds_job alice-long alice 300 sub "orders.>"
wait_until 60 "alice's long subscription running" running alice-long
# conns_of KEY: "pod:cid" of every connection of that user key.
conns_of() {
  local p
  for p in acct-0 acct-1 acct-2; do
    monitor "$NS" "$p" "connz?auth=true&limit=1000" 2>/dev/null | KEY=$1 POD=$p python3 -c '
import json, os, sys
for c in json.load(sys.stdin).get("connections") or []:
    if os.environ["KEY"] in json.dumps(c):
        print(os.environ["POD"] + ":" + str(c["cid"]))'
  done
}
has_conns() { [ -n "$(conns_of "$alice_key")" ]; }
wait_until 60 "alice connected" has_conns
old_conns=$(conns_of "$alice_key")
old_jwt=$(kubectl -n "$NS" get secret alice-creds -o jsonpath='{.data.user\.creds}')
before=$(pods_of "$NS" acct)
t2=$(now)
kubectl -n "$NS" patch user alice --type merge \
  -p '{"spec":{"permissions":{"subscribe":{"allow":["orders.eu.>","_INBOX.>"]}}}}' >/dev/null
old_closed() {
  local now_conns c
  now_conns=$(conns_of "$alice_key")
  for c in $old_conns; do grep -qx "$c" <<<"$now_conns" && return 1; done
  return 0
}
wait_until 60 "alice's connection with the old permissions closed" old_closed
narrow_s=$(since "$t2")
[ "$(kubectl -n "$NS" get secret alice-creds -o jsonpath='{.data.user\.creds}')" != "$old_jwt" ] ||
  fail "alice's creds Secret was not re-issued"
[ "$(kubectl -n "$NS" get user alice -o jsonpath='{.status.publicKey}')" = "$alice_key" ] ||
  fail "alice's key changed on a permission change"
kubectl -n "$NS" get events --field-selector reason=EarlierCredentialsRevoked -o name | grep -q . ||
  fail "no EarlierCredentialsRevoked event: $(kubectl -n "$NS" get events | tail -n 10)"
[ "$(pods_of "$NS" acct)" = "$before" ] || fail "pods restarted on alice's permission change"
kubectl -n "$NS" delete job alice-long --wait=false >/dev/null 2>&1 || true

# Deleting a User: bob's live connection is closed by the servers, which keep running.
bob_key=$(kubectl -n "$NS" get user bob -o jsonpath='{.status.publicKey}')
creds_job bob-long bob 300 sub "orders.>"
wait_until 60 "bob's long subscription running" running bob-long
connected() {
  local p
  for p in acct-0 acct-1 acct-2; do
    monitor "$NS" "$p" "connz?auth=true&limit=1000" 2>/dev/null | grep -q "$bob_key" && return 0
  done
  return 1
}
wait_until 60 "bob connected" connected
before=$(pods_of "$NS" acct)
t1=$(now)
kubectl -n "$NS" delete user bob --wait --timeout=60s >/dev/null || fail "kubectl delete user bob did not finish"
gone() { ! connected; }
wait_until 60 "bob's connection closed" gone
revoke_s=$(since "$t1")
[ "$(pods_of "$NS" acct)" = "$before" ] || fail "pods restarted when bob was deleted"
kubectl -n "$NS" get secret bob-creds >/dev/null 2>&1 &&
  wait_until 60 "bob-creds garbage-collected" sh -c "! kubectl -n '$NS' get secret bob-creds >/dev/null 2>&1"
kubectl -n "$NS" delete job bob-long --wait=false >/dev/null 2>&1 || true

echo "timing: Accounts and Users applied -> all Ready (cluster restarted into operator mode): ${ready_s}s; permission change -> old connection closed: ${narrow_s}s; kubectl delete user -> connection closed: ${revoke_s}s"
echo "accounts: operator mode on a 3-replica NatsCluster; two users with different permissions; export/import between two Accounts; a permission change revokes the earlier credentials live; deleting a User revokes it live"
