#!/usr/bin/env bash
# helm (built at the pinned version) installs, upgrades and uninstalls a chart against the
# cluster: the path the operator's chart takes.
. "$(dirname "$0")/lib.sh"
fresh_namespace natrix-helm
NS=$TEST_NS
chart=$(mktemp -d)
trap 'rm -rf "$chart"; kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT
mkdir -p "$chart/templates"
cat >"$chart/Chart.yaml" <<'YAML'
apiVersion: v2
name: e2e-probe
version: 0.1.0
YAML
cat >"$chart/values.yaml" <<'YAML'
greeting: hello
YAML
cat >"$chart/templates/configmap.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-probe
data:
  greeting: {{ .Values.greeting | quote }}
YAML
helm install probe "$chart" -n "$NS" --wait --timeout 60s >/dev/null || fail "helm install failed"
[ "$(kubectl -n "$NS" get configmap probe-probe -o jsonpath='{.data.greeting}')" = hello ] ||
  fail "helm install did not create the ConfigMap"
helm upgrade probe "$chart" -n "$NS" --set greeting=again --wait --timeout 60s >/dev/null ||
  fail "helm upgrade failed"
[ "$(kubectl -n "$NS" get configmap probe-probe -o jsonpath='{.data.greeting}')" = again ] ||
  fail "helm upgrade did not change the ConfigMap"
helm uninstall probe -n "$NS" --wait --timeout 60s >/dev/null || fail "helm uninstall failed"
kubectl -n "$NS" get configmap probe-probe >/dev/null 2>&1 && fail "helm uninstall left the ConfigMap"
echo "helm: $(helm version --short) installed, upgraded and uninstalled a chart"
