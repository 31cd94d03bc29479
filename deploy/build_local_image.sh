#!/usr/bin/env bash
# Build the CPU image on a machine that cannot pull base images: a Debian bookworm base made with debootstrap
# (Debian's own python3 is 3.11 there) and imported into podman stands in for python:3.11.11-slim-bookworm.
# Then print what the built image holds: entry point, user, health check, and the installed command.
#
#   deploy/build_local_image.sh [TAG]        (root; apt-get install podman debootstrap first)
#
# Nothing here runs a container (this project's VMs refuse podman's runtime); see deploy/README.md, "What ran here".
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/gsv-triton:cpu-local}
base=localhost/gsv-base:bookworm
rootfs=${GSV_BASE_ROOTFS:-/var/tmp/gsv-base}

if ! podman image exists "$base"; then
  if [ ! -x "$rootfs/usr/bin/python3" ]; then
    echo "[image] debootstrap bookworm into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs"
  fi
  echo "[image] importing $rootfs as $base"
  tar -C "$rootfs" -c . | podman import - "$base"
fi

echo "[image] building $tag (target cpu) from $base"
start=$(date +%s)
# This host's CA bundle (it may trust a TLS-inspecting proxy) for pip inside the RUN steps only.
ca=/etc/ssl/certs/ca-certificates.crt
podman build --isolation=chroot --format docker \
  --ignorefile deploy/docker/Dockerfile.dockerignore -f deploy/docker/Dockerfile \
  --volume "$ca:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt \
  --build-arg BASE_IMAGE="$base" --target cpu -t "$tag" .
echo "[image] built in $(( $(date +%s) - start )) s"

podman image inspect "$tag" --format \
  'entrypoint={{json .Config.Entrypoint}} cmd={{json .Config.Cmd}} user={{.Config.User}} healthcheck={{json .Config.Healthcheck.Test}} size={{.Size}}'
mount=$(podman image mount "$tag")
trap 'podman image unmount "$tag" >/dev/null' EXIT
for path in opt/venv/bin/gsv-triton opt/venv/bin/python usr/bin/tini models voices; do
  ls -ld "$mount/$path"
done
# What the venv holds: the serving stack, and no torch (the export target adds it).
ls "$mount"/opt/venv/lib/python3.11/site-packages | grep -E '^(gsv_triton|gsv_gateway|onnxruntime|numpy|tritonclient|nvidia_pytriton|pytriton|torch)' | sort -u
