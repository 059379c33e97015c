# syntax=docker/dockerfile:1
#
# files-gateway container image.
#
# Base: Red Hat UBI 9 Node.js 22 (builder) and UBI 9 Node.js 22 minimal (runtime). Chosen over
# node:22-slim because the target is OpenShift: UBI images are freely redistributable, supported
# and scanned by Red Hat, already run as UID 1001 in group 0 with /opt/app-root group-writable
# (OpenShift's restricted-v2 SCC runs the container with a random UID in group 0), and both stages
# share one RHEL 9 glibc, so the native better-sqlite3 addon built in the builder loads in the
# runtime. The builder ships make, gcc-c++ and python3 for node-gyp. Pin both by digest in
# production (…:1@sha256:…); tag 1 follows Node.js 22 updates on RHEL 9.

# --- build: all dependencies, compile TypeScript to dist/ -------------------------------------
FROM registry.access.redhat.com/ubi9/nodejs-22:1 AS build
WORKDIR /opt/app-root/src
COPY --chown=1001:0 package.json package-lock.json ./
# tsc needs no native addon, so skip install scripts here; the deps stage builds better-sqlite3.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY --chown=1001:0 tsconfig.json tsconfig.build.json ./
COPY --chown=1001:0 src ./src
RUN npm run build

# --- deps: production dependencies only, with install scripts (better-sqlite3's native addon) ---
FROM registry.access.redhat.com/ubi9/nodejs-22:1 AS deps
WORKDIR /opt/app-root/src
COPY --chown=1001:0 package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime: node, production node_modules, dist/ and the OpenAPI document -------------------
FROM registry.access.redhat.com/ubi9/nodejs-22-minimal:1
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="files-gateway" \
      org.opencontainers.image.description="OpenAI-compatible Files API for LlamaStack, bytes in S3/MinIO, metadata in SQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="registry.access.redhat.com/ubi9/nodejs-22-minimal" \
      io.k8s.display-name="files-gateway" \
      io.openshift.expose-services="8080:http"

# GLIBC_TUNABLES: keep freed buffers in the process instead of handing them back to the kernel
# after every garbage collection; fresh pages cost a page fault each, a large share of a download's
# CPU. Why: docs/operations.md#memory-allocator-and-node-flags; measured:
# docs/decisions/0005-glibc-malloc-tunables.md. The same value as package.json's config.
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    FILES_DATA_DIR=/data \
    GLIBC_TUNABLES=glibc.malloc.trim_threshold=134217728:glibc.malloc.mmap_threshold=33554432

WORKDIR /opt/app-root/src
COPY --from=deps --chown=1001:0 /opt/app-root/src/node_modules ./node_modules
COPY --from=build --chown=1001:0 /opt/app-root/src/dist ./dist
COPY --chown=1001:0 package.json ./
COPY --chown=1001:0 openapi ./openapi

# /data holds the SQLite catalog (and fs-store bytes); in Kubernetes a PVC is mounted there.
# Group 0 owns it and may write, so any UID OpenShift assigns (always in group 0) can use it.
# /tmp is already world-writable; the chart mounts an emptyDir there for a read-only root.
USER 0
RUN mkdir -p /data && chown 1001:0 /data && chmod 0775 /data
USER 1001

EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM itself; main.ts drains requests in flight on it.
# (Never `npm start`: npm does not forward signals reliably.)
# --initial-old-space-size: V8 otherwise keeps its heap limit so low that a stream of body buffers
# sets off full garbage collections again and again (docs/operations.md#memory-allocator-and-node-flags,
# docs/decisions/0006-node-initial-old-space-size.md). The same flags as package.json's config.nodeFlags.
CMD ["node", "--initial-old-space-size=64", "dist/main.js", "serve"]
