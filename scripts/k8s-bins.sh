#!/usr/bin/env bash
# Builds the Kubernetes test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm) and a real node's kubelet and kube-proxy from Go modules into a keyed cache, once per key.
#
#   scripts/k8s-bins.sh ensure   build if missing; print the bin directory on the last line
#   scripts/k8s-bins.sh path     print the bin directory if it is complete, else exit 1
#
# The key covers every version, the Go version, this script and the wrappers' go.mod/go.sum, so a
# change to any of them builds into a fresh directory. A build goes to "$BIN.tmp.$$" and is moved
# into place only after every binary exists, so an interrupted build never looks complete.
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.14
KWOK_VERSION=v0.8.0
HELM_VERSION=v4.2.4
MIN_FREE_GB=8

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${K8S_BIN_CACHE:-$HOME/.cache/spore/k8s-bins}

export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw

cache_key() {
  {
    echo "$K8S_VERSION $ETCD_VERSION $KWOK_VERSION $HELM_VERSION"
    go version
    cat "$root/scripts/k8s-bins.sh"
    cat "$root"/tools/k8s-bins/go.mod "$root"/tools/k8s-bins/go.sum
    cat "$root"/tools/etcd-bin/go.mod "$root"/tools/etcd-bin/go.sum
  } | sha256sum | cut -c1-16
}

check_disk() {
  mkdir -p "$cache_root"
  local free_kb
  free_kb=$(df -Pk "$cache_root" | awk 'NR==2 {print $4}')
  if [ "$free_kb" -lt $((MIN_FREE_GB * 1024 * 1024)) ]; then
    echo "k8s-bins: only $((free_kb / 1024)) MiB free under $cache_root; the build needs ${MIN_FREE_GB} GiB" >&2
    exit 2
  fi
}

timed() {
  local what=$1 start=$SECONDS
  shift
  echo "k8s-bins: building $what" >&2
  "$@"
  echo "k8s-bins: $what took $((SECONDS - start)) s" >&2
}

build_k8s() {
  local dest=$1 ldf="-s -w" major minor
  major=$(echo "${K8S_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${K8S_VERSION#v}" | cut -d. -f2)
  # Without these the apiserver reports v0.0.0-master, which helm's kubeVersion check and
  # kube-rs apiserver_version() read. Fixed commit/date keep the Go build cache valid.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
    ldf="$ldf -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  (cd "$root/tools/k8s-bins" && go build -trimpath -ldflags "$ldf" -o "$dest/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy)
}

build_etcd() {
  (cd "$root/tools/etcd-bin" && go build -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  GOBIN=$1 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_helm() {
  GOBIN=$1 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
}

# kwok v0.8.0 needs its Stage objects passed in; the defaults ship inside its module.
kwok_stage_dir() {
  echo "$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
}

ensure() {
  local bin
  bin="$cache_root/$(cache_key)"
  if [ -f "$bin/.complete" ]; then
    echo "$bin"
    return
  fi
  check_disk
  local tmp="$bin.tmp.$$" start=$SECONDS
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  timed etcd build_etcd "$tmp"
  timed kwok build_kwok "$tmp"
  timed helm build_helm "$tmp"
  timed "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy" build_k8s "$tmp"
  mkdir -p "$tmp/kwok-stages"
  cp -r "$(kwok_stage_dir)"/. "$tmp/kwok-stages/"
  chmod -R u+w "$tmp/kwok-stages"
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok helm; do
    [ -x "$tmp/$b" ] || { echo "k8s-bins: $b missing after build" >&2; exit 1; }
  done
  echo "built in $((SECONDS - start)) s on $(date -u +%FT%TZ)" >"$tmp/.complete"
  rm -rf "$bin"
  mv "$tmp" "$bin"
  trap - EXIT
  echo "k8s-bins: complete in $((SECONDS - start)) s" >&2
  echo "$bin"
}

case "${1:-ensure}" in
  ensure) ensure ;;
  path)
    bin="$cache_root/$(cache_key)"
    [ -f "$bin/.complete" ] || { echo "k8s-bins: not built; run scripts/k8s-bins.sh ensure" >&2; exit 1; }
    echo "$bin"
    ;;
  *) echo "usage: $0 ensure|path" >&2; exit 2 ;;
esac
