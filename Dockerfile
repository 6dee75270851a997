# ethpipe's container image: `docker build -t ethpipe:0.1.0 .`
# (or `make kick-start`, which builds it inside minikube). docs/deploy.md.
#
# Two stages: the release binary is built with the Rust toolchain, then copied
# into a slim Debian image of the same release (same glibc) that runs it as a
# non-root user. TLS uses rustls; no OpenSSL is needed at run time.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Only what the build needs (see .dockerignore): the workspace manifests, the
# lock file and the crates.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The release profile keeps line tables for backtraces; compressing them
# takes the binary from about 115 MB to about 42 MB.
RUN cargo build --release --locked -p ethpipe \
    && objcopy --compress-debug-sections=zlib target/release/ethpipe /usr/local/bin/ethpipe \
    && chmod 0755 /usr/local/bin/ethpipe

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: the system's trust store, for HTTPS to BigQuery and RPC
# nodes. curl: the HEALTHCHECK's probe of /healthz (Kubernetes probes over
# HTTP itself and ignores HEALTHCHECK).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --gid 10001 ethpipe \
    && useradd --uid 10001 --gid 10001 --home-dir /home/ethpipe --create-home \
       --shell /usr/sbin/nologin ethpipe
COPY --from=build /usr/local/bin/ethpipe /usr/local/bin/ethpipe
USER 10001:10001
WORKDIR /home/ethpipe
# In a container the server must listen beyond loopback, where ethpipe requires
# ETHPIPE_API_TOKEN: docker run -e ETHPIPE_API_TOKEN=… -e ETHPIPE_DATABASE_URL=… -p 6789:6789 ethpipe:0.1.0
ENV ETHPIPE_BIND=0.0.0.0:6789
EXPOSE 6789
# Probes the port of ETHPIPE_BIND on loopback. Meaningful for `serve` (the
# default command); a one-off `run` or `backfill` container has no server.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "curl --fail --silent --show-error --max-time 4 \"http://127.0.0.1:${ETHPIPE_BIND##*:}/healthz\" >/dev/null || exit 1"]
ENTRYPOINT ["ethpipe"]
CMD ["serve"]
