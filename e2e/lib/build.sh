# Builds the cluster's Go components into $E2E_CACHE/bin, each cached by a version stamp.
# Sourced by e2e/cluster; expects versions.sh and log()/die() to be loaded.

GO_LDFLAGS_BASE="-s -w"

# stamp_ok NAME VERSION: the binary exists and was built from VERSION.
stamp_ok() { [ -x "$E2E_BIN/$1" ] && [ "$(cat "$E2E_BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$E2E_BIN/.$1.version"; }

gobuild() { # gobuild DIR OUTDIR LDFLAGS PKG...
  local dir=$1 out=$2 ldflags=$3
  shift 3
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath \
    -ldflags="$ldflags" -o "$out/" "$@")
}

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local b missing=0
  for b in "${bins[@]}"; do stamp_ok "$b" "$KUBE_VERSION" || missing=1; done
  [ $missing = 0 ] && return 0
  log "building Kubernetes $KUBE_VERSION (${bins[*]}) from k8s.io/kubernetes; cold: ~15-20 min on 2 cores"
  local mod="$E2E_CACHE/src/kubernetes-$KUBE_VERSION"
  mkdir -p "$mod"
  # The helper module: k8s.io/kubernetes requires its staging modules at v0.0.0 and
  # replaces them with ./staging paths, which only work inside its own tree; so pin each
  # one to the published v0.x of the same release.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || die "cannot download k8s.io/kubernetes@$KUBE_VERSION"
  {
    echo "module natrix.e2e/kubernetes"
    echo
    echo "go $(sed -n 's/^go //p' "$gomod")"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$KUBE_STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  local major minor ld="" key
  major=$(echo "$KUBE_VERSION" | sed 's/^v\([0-9]*\)\..*/\1/')
  minor=$(echo "$KUBE_VERSION" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
  for key in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $key.gitVersion=$KUBE_VERSION -X $key.gitMajor=$major -X $key.gitMinor=$minor"
    ld="$ld -X $key.gitTreeState=clean -X $key.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$mod" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
  local pkgs=()
  for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  gobuild "$mod" "$E2E_BIN" "$GO_LDFLAGS_BASE $ld" "${pkgs[@]}" || die "Kubernetes build failed"
  for b in "${bins[@]}"; do stamp "$b" "$KUBE_VERSION"; done
}

build_gomod_tool() { # NAME VERSION MODULE PKG [LDFLAGS]
  local name=$1 version=$2 module=$3 pkg=$4 ld=${5:-}
  stamp_ok "$name" "$version" && return 0
  log "building $name $version from $module"
  local mod="$E2E_CACHE/src/$name-$version"
  mkdir -p "$mod"
  printf 'module natrix.e2e/%s\n\ngo 1.25\n\nrequire %s %s\n' "$name" "$module" "$version" >"$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$mod/tools.go"
  (cd "$mod" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath \
    -ldflags="$GO_LDFLAGS_BASE $ld" -o "$E2E_BIN/$name" "$pkg") || die "$name build failed"
  stamp "$name" "$version"
}

build_all() {
  mkdir -p "$E2E_BIN"
  build_gomod_tool etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
  build_gomod_tool coredns "$COREDNS_VERSION" github.com/coredns/coredns github.com/coredns/coredns
  build_gomod_tool helm "$HELM_VERSION" helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
  build_gomod_tool crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools sigs.k8s.io/cri-tools/cmd/crictl
  build_kubernetes
}
