# Go modules built at pinned versions, cached in $CACHE/bin: sourced by deploy/bootstrap.sh and
# deploy/build-slo-peers.sh, which define CACHE, VENV (for its Python), ok and die.

# Checks that the Go module proxy serves module@version with the pinned h1 hash (go itself checks
# every module against the Go checksum database as well).
check_module_sum() {
  local module=$1 version=$2 pinned=$3 info sum
  info=$(GOFLAGS=-mod=mod go mod download -json "$module@$version") \
    || die "cannot download $module@$version from the Go module proxy"
  sum=$(printf '%s' "$info" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Sum"])')
  [ "$sum" = "$pinned" ] || die "$module@$version checksum $sum != pinned $pinned"
}

# A throwaway module in a temporary folder: go.mod written by the caller, built there, removed.
build_in_module() {  # <folder> <output dir> <ldflags> <packages...>
  local folder=$1 out=$2 ldflags=$3; shift 3
  (cd "$folder" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod tidy \
    && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags "$ldflags" -o "$out/" "$@")
}

go_install_pinned() {  # <name> <module> <package> <version> <pinned h1> [extra ldflags]
  local name=$1 module=$2 package=$3 version=$4 pinned=$5 ldflags=${6:-} bin gobin
  bin="$CACHE/bin/$name-$version"
  if [ -x "$bin" ]; then ok "cached in $bin"; chmod a+rx "$bin"; return; fi
  check_module_sum "$module" "$version" "$pinned"
  gobin=$(mktemp -d)
  ok "building $package@$version"
  GOBIN="$gobin" CGO_ENABLED=0 GOTOOLCHAIN=local go install -trimpath -ldflags "-s -w $ldflags" "$package@$version" \
    || { rm -rf "$gobin"; die "go install of $package@$version failed"; }
  mv "$gobin/$name" "$bin.part" && mv "$bin.part" "$bin"
  rm -rf "$gobin"
  chmod a+rx "$bin"
  ok "built $bin"
}

# Builds a module's main package from the module's own source at a pinned version, in a copy the
# caller's <prepare> function may complete first (run inside the copy): for a main package that
# embeds a folder the module zip does not carry (e.g. a web UI built by another toolchain).
go_build_pinned_source() {  # <name> <module> <version> <pinned h1> <prepare> [package, default .]
  local name=$1 module=$2 version=$3 pinned=$4 prepare=$5 package=${6:-.} bin src work
  bin="$CACHE/bin/$name-$version"
  if [ -x "$bin" ]; then ok "cached in $bin"; chmod a+rx "$bin"; return; fi
  check_module_sum "$module" "$version" "$pinned"
  src=$(GOFLAGS=-mod=mod go mod download -json "$module@$version" \
    | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d)
  cp -R "$src/." "$work/" && chmod -R u+w "$work"
  ok "building $module@$version ($package)"
  (cd "$work" && "$prepare" \
    && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
      -o "$bin.part" "$package") \
    || { rm -rf "$work" "$bin.part"; die "building $module@$version failed"; }
  mv "$bin.part" "$bin"
  rm -rf "$work"
  chmod a+rx "$bin"
  ok "built $bin"
}
