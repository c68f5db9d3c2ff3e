#!/usr/bin/env bash
# Builds a local stand-in for python:3.11-slim from Debian packages, for machines that cannot pull images.
# Usage: kserve/base-image.sh IMAGE_TAG   (as root: debootstrap needs it; `make base-image` calls this)
# The result has Debian bookworm's python3 (3.11) with venv and the CA bundle, nothing else: the Dockerfiles
# install everything into a venv from a wheelhouse the host filled, so this base never needs the network again.
set -euo pipefail
tag="${1:?usage: $0 IMAGE_TAG}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${DEBIAN_SUITE:-bookworm}"
docker="${DOCKER:-docker}"

if "$docker" image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag exists (docker rmi $tag to rebuild)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap not found (apt-get install -y debootstrap)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 2; }

root="$(mktemp -d "${TMPDIR:-/tmp}/boston-base.XXXXXX")"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$root" "$mirror" >/dev/null
# Package caches and lists are build leftovers, not part of a base image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
tar -C "$root" --numeric-owner -c . | "$docker" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $suite minbase + python3, python3-venv, ca-certificates" \
    - "$tag" >/dev/null
echo "built base image $tag ($("$docker" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
