#!/usr/bin/env bash
# Builds Spore's three container images as OCI image layouts, with no container daemon and no
# image registry: root file systems from Debian's packages (mmdebstrap), layers packed by
# scripts/oci_image.py. The recipes a lab builds with its own tools are images/*.Containerfile;
# this script builds the same images from the same package lists (images/packages-*.txt).
#
#   scripts/images.sh build [--profile release|dev]   build; print "NAME REF LAYOUT" per image
#   scripts/images.sh tag [--profile release|dev]     print the source-derived tag
#   scripts/images.sh archive NAME FILE [--profile P] write NAME's image as an OCI archive (ctr import)
#   scripts/images.sh push REGISTRY [--profile P]     copy the images to REGISTRY/NAME:TAG (skopeo)
#   scripts/images.sh pause                           the test node's pod sandbox image (tools/pause);
#                                                     print "NAME REF LAYOUT"
#   scripts/images.sh coredns                         the test cluster's DNS (CoreDNS from the Go
#                                                     module proxy); print "NAME REF LAYOUT"
#
# Images: spore-operator (the controller), spore (the node agent), spore-trainer (training and
# evaluation pods: Python, torch, gcc, spore, spore-eval). Each is tagged VERSION (the chart's
# appVersion, what its defaults name) and VERSION-SRC (SRC: a hash of the repository's source
# files, so a build from other sources never reuses a tag); `--profile dev` builds from debug
# binaries (what the tests use: no second compile) and appends `-dev`.
#
# Cached by content key under $HOME/.cache/spore/images (rebuildable: delete it). Needs root
# (mmdebstrap's chroot), mmdebstrap, zstd, patchelf, Python 3 and the workspace's torch
# (scripts/torch-env.sh); as root it installs the Debian packages itself.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

cache=${SPORE_IMAGE_CACHE:-$HOME/.cache/spore/images}
prefix=${SPORE_IMAGE_PREFIX:-ghcr.io/spore-mesh}
COREDNS_VERSION=v1.15.0
suite=bookworm
mirror=${SPORE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Fixed times make layers reproducible and reusable across commits.
export SOURCE_DATE_EPOCH=0
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
oci=(python3 "$root/scripts/oci_image.py")

die() { echo "images: $*" >&2; exit 1; }
log() { echo "images: $*" >&2; }
key() { sha256sum | cut -c1-16; }

version() { sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1; }

# A hash of every source file git knows of (committed or not, ignored files left out).
source_key() {
  git ls-files -z --cached --others --exclude-standard | sort -z | xargs -0 sha256sum 2>/dev/null | key | cut -c1-12
}

tag() {
  local t
  t="$(version)-$(source_key)"
  [ "$profile" = dev ] && t="$t-dev"
  echo "$t"
}

ensure_tools() {
  local missing=()
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v patchelf >/dev/null || missing+=(patchelf)
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run: sudo apt-get install ${missing[*]}"
  log "installing Debian's ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

packages() { grep -v '^#' "images/packages-$1.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//'; }

# The users every image knows: root, nobody and nonroot (65532, the pods' runAsUser).
add_users() {
  local dir=$1
  grep -q '^nonroot:' "$dir/etc/passwd" 2>/dev/null && return
  if [ ! -f "$dir/etc/passwd" ]; then
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  fi
  echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >>"$dir/etc/passwd"
  echo 'nonroot:x:65532:' >>"$dir/etc/group"
}

# Drops what a container never reads: package lists, caches, manuals.
slim() {
  local dir=$1
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/usr/share/man "$dir"/usr/share/info "$dir"/usr/share/locale "$dir"/var/log/*
  find "$dir/usr/share/doc" -mindepth 2 ! -name copyright -type f -delete 2>/dev/null || true
}

# layer NAME KEY BUILDER: $cache/layers/NAME-KEY.{tar.zst,json}, made once by `BUILDER DIR`.
layer() {
  local name=$1 k=$2 builder=$3 out="$cache/layers/$1-$2"
  if [ ! -f "$out.json" ]; then
    local dir="$cache/work/$name-$k.$$" start=$SECONDS
    rm -rf "$dir"
    mkdir -p "$dir" "$cache/layers"
    log "building layer $name ($k)"
    "$builder" "$dir" >&2
    "${oci[@]}" layer "$dir" "$out.tmp"
    mv "$out.tmp.tar.zst" "$out.tar.zst"
    mv "$out.tmp.json" "$out.json"
    rm -rf "$dir"
    log "layer $name took $((SECONDS - start)) s"
  fi
  echo "$out"
}

# Root file systems.
base_runtime() {
  mmdebstrap --quiet --variant=extract --include="$(packages runtime)" "$suite" "$1" "$mirror"
  add_users "$1"
  slim "$1"
}

base_trainer() {
  mmdebstrap --quiet --variant=minbase --include="$(packages trainer)" "$suite" "$1" "$mirror"
  add_users "$1"
  slim "$1"
}

# The workspace's torch, as a virtualenv at /opt/spore/venv over Debian's python3.11.
venv_site() { "$SPORE_WORKSPACE_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

layer_venv() {
  local venv=$1/opt/spore/venv
  mkdir -p "$venv/bin" "$venv/lib/python3.11"
  cp -al "$(venv_site)" "$venv/lib/python3.11/site-packages"
  rm -rf "$venv/lib/python3.11/site-packages"/{pip,pip-*,setuptools,setuptools-*,_distutils_hack,distutils-precedence.pth}
  local name
  for name in python python3 python3.11; do ln -s /usr/bin/python3.11 "$venv/bin/$name"; done
  printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n' >"$venv/pyvenv.cfg"
}

binary_dir() { [ "$profile" = dev ] && echo "$CARGO_TARGET_DIR/debug" || echo "$CARGO_TARGET_DIR/release"; }

install_binary() {
  local from=$1 to=$2
  mkdir -p "$(dirname "$to")"
  cp "$from" "$to"
  strip --strip-debug "$to"
  chmod 0755 "$to"
}

layer_operator_bin() { install_binary "$(binary_dir)/spore-operator" "$1/usr/local/bin/spore-operator"; }
layer_agent_bin() { install_binary "$(binary_dir)/spore" "$1/usr/local/bin/spore"; }
layer_trainer_bin() {
  install_binary "$(binary_dir)/spore" "$1/usr/local/bin/spore"
  install_binary "$(binary_dir)/spore-eval" "$1/usr/local/bin/spore-eval"
  # spore-eval finds libtorch in the image's virtualenv, not where it was built.
  patchelf --set-rpath /opt/spore/venv/lib/python3.11/site-packages/torch/lib "$1/usr/local/bin/spore-eval"
}

build_binaries() {
  # Without SOURCE_DATE_EPOCH: C build scripts (the cc crate) watch it, and a cargo run with it
  # set would rebuild them and everything above them, and the next run without it again.
  if [ "$profile" = dev ]; then
    # The binaries the test suite builds (same features), so the tests compile nothing twice.
    log "cargo test --workspace --locked --no-run"
    env -u SOURCE_DATE_EPOCH cargo test --workspace --locked --no-run >&2
    return
  fi
  log "cargo build --release"
  env -u SOURCE_DATE_EPOCH cargo build --release --locked -p spore-operator --bin spore-operator \
    -p spore-agent --bin spore -p spore-eval --bin spore-eval >&2
}

labels() {
  local title=$1 description=$2
  printf '"org.opencontainers.image.title": "%s", "org.opencontainers.image.description": "%s",' "$title" "$description"
  printf '"org.opencontainers.image.version": "%s", "org.opencontainers.image.revision": "%s",' "$(tag)" "$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  printf '"org.opencontainers.image.source": "https://github.com/spore-mesh/spore", "org.opencontainers.image.licenses": "Apache-2.0"'
}

# assemble NAME CONFIG-JSON LAYER...: the layout $cache/oci/NAME-TAG.
assemble() {
  local name=$1 config=$2
  shift 2
  local t out args=()
  t=$(tag)
  out="$cache/oci/$name-$t"
  for l in "$@"; do args+=(--layer "$l"); done
  mkdir -p "$cache/oci"
  echo "$config" >"$cache/work/$name.config.json"
  "${oci[@]}" image --out "$out" --config "$cache/work/$name.config.json" \
    --ref "$prefix/$name:$(version)" --ref "$prefix/$name:$t" "${args[@]}" >/dev/null
  echo "$name $prefix/$name:$t $out"
}

build() {
  [ "$(id -u)" = 0 ] || die "building the root file systems needs root (mmdebstrap --mode=root)"
  ensure_tools
  # shellcheck source=scripts/torch-env.sh
  source "$root/scripts/torch-env.sh"
  build_binaries
  mkdir -p "$cache/work"
  local start=$SECONDS runtime trainer venv k
  runtime=$(layer runtime "$({ packages runtime; declare -f base_runtime add_users slim; } | key)" base_runtime)
  trainer=$(layer trainer-base "$({ packages trainer; declare -f base_trainer add_users slim; } | key)" base_trainer)
  venv=$(layer venv "$({ cat workspace/requirements.txt; "$SPORE_WORKSPACE_PYTHON" -V; declare -f layer_venv; } | key)" layer_venv)
  k=$(sha256sum "$(binary_dir)/spore-operator" | key)
  local op_bin agent_bin trainer_bin
  op_bin=$(layer operator-bin "$k" layer_operator_bin)
  agent_bin=$(layer agent-bin "$(sha256sum "$(binary_dir)/spore" | key)" layer_agent_bin)
  trainer_bin=$(layer trainer-bin "$(cat "$(binary_dir)/spore" "$(binary_dir)/spore-eval" | sha256sum | key)" layer_trainer_bin)
  local path=/usr/local/bin:/usr/bin:/bin
  assemble spore-operator "{\"Entrypoint\": [\"/usr/local/bin/spore-operator\"], \"Cmd\": [\"run\"],
    \"User\": \"65532:65532\", \"Env\": [\"PATH=$path\"], \"WorkingDir\": \"/\",
    \"Labels\": {$(labels spore-operator 'Spore operator: reconciles SporeNodes and Experiments')}}" "$runtime" "$op_bin"
  assemble spore "{\"Entrypoint\": [\"/usr/local/bin/spore\"], \"Cmd\": [\"--help\"],
    \"User\": \"65532:65532\", \"Env\": [\"PATH=$path\", \"HOME=/var/lib/spore\"], \"WorkingDir\": \"/\",
    \"Labels\": {$(labels spore 'Spore node agent: a Spore Mesh peer')}}" "$runtime" "$agent_bin"
  assemble spore-trainer "{\"Entrypoint\": [\"/usr/local/bin/spore\", \"exec\"], \"Cmd\": [\"--help\"],
    \"User\": \"65532:65532\", \"WorkingDir\": \"/tmp\",
    \"Env\": [\"PATH=/opt/spore/venv/bin:$path\", \"SPORE_PYTHON=/opt/spore/venv/bin/python\", \"HOME=/tmp\", \"TMPDIR=/tmp\"],
    \"Labels\": {$(labels spore-trainer 'Spore training and evaluation pods: torch, spore exec, spore-eval')}}" \
    "$trainer" "$venv" "$trainer_bin"
  rm -rf "$cache/work"
  log "built in $((SECONDS - start)) s"
}

# The pod sandbox ("pause") image of the test node's container runtime: one static Go binary.
layer_pause() {
  mkdir -p "$1/usr/local/bin"
  (cd "$root/tools/pause" && GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w" -o "$1/usr/local/bin/pause" .)
}

# single_binary_image NAME KEY USER: a test-cluster image of the one binary `layer_NAME` builds,
# /usr/local/bin/NAME as its entrypoint; prints "NAME REF LAYOUT".
single_binary_image() {
  local name=$1 k=$2 user=$3 l
  mkdir -p "$cache/work"
  l=$(layer "$name" "$k" "layer_$name")
  local out="$cache/oci/$name-$k" ref="localhost/spore-$name:$k"
  if [ ! -f "$out/index.json" ]; then
    echo "{\"Entrypoint\": [\"/usr/local/bin/$name\"], \"User\": \"$user\"}" >"$cache/work/$name.config.json"
    "${oci[@]}" image --out "$out" --config "$cache/work/$name.config.json" --ref "$ref" --layer "$l" >/dev/null
  fi
  echo "$name $ref $out"
}

pause_image() {
  single_binary_image pause "$({ cat tools/pause/go.mod tools/pause/main.go; go version; declare -f layer_pause; } | key)" 65535:65535
}

# The test cluster's DNS: one static Go binary.
layer_coredns() {
  mkdir -p "$1/usr/local/bin"
  GOBIN="$1/usr/local/bin" GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw \
    go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}

coredns_image() {
  single_binary_image coredns "$({ echo "$COREDNS_VERSION"; go version; declare -f layer_coredns; } | key)" 65532:65532
}

layout_of() {
  local dir="$cache/oci/$1-$(tag)"
  [ -f "$dir/index.json" ] || die "no image $1 at $dir; run: scripts/images.sh build --profile $profile"
  echo "$dir"
}

profile=release
command=${1:-build}
shift || true
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --profile=*) profile=${1#*=}; shift ;;
    *) positional+=("$1"); shift ;;
  esac
done
case "$profile" in release | dev) ;; *) die "--profile is release or dev" ;; esac

case "$command" in
  build)
    mkdir -p "$cache"
    build | tee "$cache/latest-$profile.txt.tmp"
    mv "$cache/latest-$profile.txt.tmp" "$cache/latest-$profile.txt"
    # The disk keeps one generation per profile (and the pause image): the training image is
    # 2.6 GB packed.
    mapfile -t keep < <(cat "$cache"/latest-*.txt | awk '{print $3}'; pause_image | awk '{print $3}'
      [ -f "$cache/latest-coredns.txt" ] && awk '{print $3}' "$cache/latest-coredns.txt")
    "${oci[@]}" prune "$cache" "${keep[@]}"
    ;;
  tag) tag ;;
  pause) pause_image ;;
  coredns) coredns_image | tee "$cache/latest-coredns.txt" ;;
  archive)
    [ ${#positional[@]} -eq 2 ] || die "usage: $0 archive NAME FILE"
    tar --create --file="${positional[1]}" --directory "$(layout_of "${positional[0]}")" --sort=name .
    ;;
  push)
    [ ${#positional[@]} -eq 1 ] || die "usage: $0 push REGISTRY (e.g. registry.lab.example/spore)"
    command -v skopeo >/dev/null || die "push copies with skopeo: sudo apt-get install skopeo"
    for name in spore-operator spore spore-trainer; do
      for t in "$(version)" "$(tag)"; do
        skopeo copy "oci:$(layout_of "$name"):$t" "docker://${positional[0]}/$name:$t"
      done
    done
    ;;
  *) die "usage: $0 build|tag|archive|push|pause|coredns" ;;
esac
