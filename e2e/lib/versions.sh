# shellcheck shell=bash disable=SC2034
# Pinned versions of everything the e2e cluster builds. Changing a pin rebuilds that
# component on the next `e2e/cluster up` (each build is cached under a version stamp).
# Why these versions: see e2e/README.md ("Versions").
KUBE_VERSION=v1.35.4          # last minor that supports containerd 1.x (apt has 1.6.20)
KUBE_STAGING_VERSION=v0.35.4  # k8s.io/* staging modules published for KUBE_VERSION
ETCD_VERSION=v3.6.16          # etcd minor that Kubernetes 1.35 is tested with
COREDNS_VERSION=v1.14.7
HELM_VERSION=v4.3.1
CRICTL_VERSION=v1.34.0       # CRI client, used by `down` to remove pod sandboxes cleanly
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
CLUSTER_DNS_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
