#!/usr/bin/env bash
# Builds the offline test image (Debian bookworm with bash, python3 and nodejs) without a
# registry pull: debootstrap from Debian's mirror, then `docker import`. About a minute.
set -euo pipefail
name=${1:-cronium-test:bookworm}
if docker image inspect "$name" >/dev/null 2>&1; then
  echo "image $name already present"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,nodejs bookworm "$root" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$name" >/dev/null
echo "built image $name"
