# syntax=docker/dockerfile:1
#
# conntrack-cleaner image: the compiled agent, the `conntrack` binary and the
# shared libraries both load, on an empty (scratch) base. No shell, no package
# manager. Build:
#   docker build -t REGISTRY/conntrack-cleaner:0.1.0 .
# Offline denort (no download by `deno compile`): put it in the build context
# and pass its path inside the build stage, e.g.
#   docker build --build-arg DENORT_BIN=/src/denort -t REGISTRY/conntrack-cleaner:0.1.0 .

# --- 1. compile the agent -----------------------------------------------------
# The same two steps as `deno task compile`: the type check with Deno's default
# heap, then `deno compile --no-check` with deno.json's V8 flags, which are
# embedded in the binary and bound the agent's heap (docs/benchmarks.md); they
# must not bound the type check, which needs more than 64 MB.
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
# Dependencies first, so this layer is reused while only the code changes.
# tests/deno.json is the workspace member holding the test-only packages
# (deno.lock names it; .dockerignore lets it through): the agent imports only
# yaml, and --exclude-unused-npm keeps the test packages out of the binary.
COPY deno.json deno.lock* ./
COPY tests/deno.json tests/deno.json
RUN if [ -f deno.lock ]; then deno install --frozen; else deno install; fi
COPY . .
ARG DENORT_BIN
RUN if [ -z "${DENORT_BIN:-}" ]; then unset DENORT_BIN; fi \
 && mkdir -p /out \
 && deno check main.ts \
 && deno compile --no-check -A --exclude-unused-npm --v8-flags=--max-semi-space-size=1,--max-old-space-size=64 --output /out/conntrack-cleaner main.ts \
 && /out/conntrack-cleaner --version

# --- 2. gather the binaries and their libraries into /rootfs -------------------
FROM debian:bookworm-slim AS rootfs
# conntrack: the CLI the agent can delete through (it brings libnetfilter_conntrack,
# libnfnetlink, libmnl); binutils: readelf, used by the assembly script.
RUN apt-get update \
 && apt-get install -y --no-install-recommends conntrack binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY --chmod=0755 scripts/assemble_rootfs.sh scripts/assemble_rootfs.sh
COPY --from=build /out/conntrack-cleaner /out/conntrack-cleaner
# Then /tmp: the compiled binary keeps its V8 code cache in the temp directory
# (in Kubernetes an emptyDir is mounted there, the root file system being
# read-only). Last, the tree must work on its own: run conntrack inside it.
RUN scripts/assemble_rootfs.sh /rootfs \
      /out/conntrack-cleaner:/usr/local/bin/conntrack-cleaner \
      /usr/sbin/conntrack \
 && install -d -m 1777 /rootfs/tmp \
 && chroot /rootfs /usr/sbin/conntrack --version

# --- 3. the image -----------------------------------------------------------------
FROM scratch
COPY --from=rootfs /rootfs/ /
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin
# Runs as root (no USER): /proc/net/nf_conntrack is readable by root only. The
# DaemonSet drops every capability but NET_ADMIN.
EXPOSE 10395/tcp
ENTRYPOINT ["/usr/local/bin/conntrack-cleaner"]
