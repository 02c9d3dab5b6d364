#!/usr/bin/env bash
# Builds the SLO rule generators `make bench-slo` compares ours with, idempotently: Sloth
# (github.com/slok/sloth/cmd/sloth) and Pyrra (github.com/pyrra-dev/pyrra, for `pyrra generate`),
# from the Go module proxy at the versions and h1 hashes pinned in deploy/versions.env, into the
# stack cache (<cache>/bin/sloth-<version>, <cache>/bin/pyrra-<version>). Not part of
# `make bootstrap`: only the benchmark needs them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/versions.env
. "$ROOT/deploy/versions.env"
if [ "$(id -u)" = 0 ]; then
  CACHE=${STACK_CACHE_DIR:-/var/cache/inventory-slo}
else
  CACHE=${STACK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/inventory-slo}
fi
VENV="$ROOT/.venv"
ok() { printf '    %s\n' "$*"; }
die() { printf '\033[31mbuild-slo-peers failed: %s\033[0m\n' "$*" >&2; exit 1; }
# shellcheck source=deploy/go-pinned.sh
. "$ROOT/deploy/go-pinned.sh"

command -v go >/dev/null 2>&1 || die "Go is needed to build Sloth and Pyrra (https://go.dev/dl)"
mkdir -p "$CACHE/bin"

printf '==> Sloth %s\n' "$SLOTH_VERSION"
go_install_pinned sloth github.com/slok/sloth github.com/slok/sloth/cmd/sloth \
  "$SLOTH_VERSION" "$SLOTH_MODULE_SUM"

printf '==> Pyrra %s\n' "$PYRRA_VERSION"
pyrra_ui_placeholder() {  # the UI Pyrra embeds is built with npm, outside its Go module
  mkdir -p ui/build
  printf '<!doctype html><title>Pyrra</title><p>UI not built: only pyrra generate is used.\n' \
    > ui/build/index.html
}
go_build_pinned_source pyrra github.com/pyrra-dev/pyrra "$PYRRA_VERSION" "$PYRRA_MODULE_SUM" \
  pyrra_ui_placeholder
