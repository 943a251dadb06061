# Images for docker-compose.yml, from one build:
#   app     the native generator and dashboard
#   deploy  rpk with the pipeline transform (.wasm) and transform.yaml: a
#           one-shot job that creates the topics and deploys the transform
ARG RUST_VERSION=1.96.0
ARG REDPANDA_VERSION=v26.1.9

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the toolchain and adds wasm32-wasip1.
RUN rustup show active-toolchain \
 && cargo build --locked --release -p generator -p dashboard \
 && cargo build --locked --profile transform --target wasm32-wasip1 -p marketing-pipeline \
 && mkdir -p /out \
 && cp target/release/generator target/release/dashboard /out/ \
 && cp target/wasm32-wasip1/transform/marketing-pipeline.wasm transform.yaml /out/

FROM debian:bookworm-slim AS app
# curl for the health checks; libssl3 for librdkafka's TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/generator /out/dashboard /usr/local/bin/
USER nobody

FROM docker.redpanda.com/redpandadata/redpanda:${REDPANDA_VERSION} AS deploy
# `rpk transform deploy` run here finds transform.yaml and the .wasm named
# after the transform.
WORKDIR /pipeline
COPY --from=build /out/marketing-pipeline.wasm /out/transform.yaml ./
