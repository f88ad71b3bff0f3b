#!/usr/bin/env bash
# Build the worker agent bundle, the tarball bootstrap.sh installs on a node:
#   target/agent/inventiv-agent-<version>.tar.gz
# holding inventiv_agent/*.py, requirements.txt and build-info.json.
# Deterministic: names sorted, owner 0:0, modes normalised, every mtime the
# build date, gzip without name/time, so the same input gives the same sha256.
#
#   scripts/agent-bundle.sh [--out DIR] [--src AGENT_DIR]
#
# Prints one line on stdout: "<sha256>  <absolute path of the tarball>".
# The build date is $SOURCE_DATE_EPOCH when set, else the time of the last
# commit touching inventiv-worker/agent, else 1980-01-01 (uncommitted tree).
# The version is AGENT_VERSION in inventiv_agent/__init__.py.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src=$REPO_ROOT/inventiv-worker/agent
out=$REPO_ROOT/target/agent

die() {
  printf '[agent-bundle] ERROR: %s\n' "$*" >&2
  exit 1
}

while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --src) src=${2:?--src needs a directory}; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

init=$src/inventiv_agent/__init__.py
[[ -f $init ]] || die "no agent package at $src/inventiv_agent"
version=$(sed -n 's/^AGENT_VERSION = "\([^"]*\)"$/\1/p' "$init")
[[ $version =~ ^[0-9A-Za-z.+-]+$ ]] || die "cannot read AGENT_VERSION from $init"

epoch=${SOURCE_DATE_EPOCH:-}
if [[ -z $epoch ]] && git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  epoch=$(git -C "$REPO_ROOT" log -1 --format=%ct -- "$src" 2>/dev/null || true)
fi
[[ $epoch =~ ^[0-9]+$ ]] || epoch=315532800
build_date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/inventiv_agent"
cp "$src"/inventiv_agent/*.py "$stage/inventiv_agent/"
cp "$src/requirements.txt" "$stage/requirements.txt"
printf '{"version": "%s", "build_date": "%s"}\n' "$version" "$build_date" >"$stage/build-info.json"

mkdir -p "$out"
out=$(cd "$out" && pwd)
bundle=$out/inventiv-agent-$version.tar.gz
tar --sort=name --format=gnu --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
  --mode='u=rwX,go=rX' -C "$stage" -cf - build-info.json inventiv_agent requirements.txt |
  gzip -n -9 >"$bundle.tmp"
mv -f "$bundle.tmp" "$bundle"
sha=$(sha256sum "$bundle" | cut -d' ' -f1)
printf '%s\n' "$sha" >"$bundle.sha256"
printf '%s  %s\n' "$sha" "$bundle"
