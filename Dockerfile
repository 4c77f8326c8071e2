# memaudit: multi-stage build, non-root runtime.
# No Docker engine runs on the development machines, so this file is linted, not built, there.
# The daemon (`memaudit serve`, with its HEALTHCHECK on /healthz) arrives with the daemon issue;
# until then the image runs the index and check commands.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin memaudit

FROM debian:bookworm-slim
# libgomp1: libsais sorts suffixes with OpenMP threads.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/memaudit --create-home memaudit
COPY --from=build /src/target/release/memaudit /usr/local/bin/memaudit
USER memaudit
WORKDIR /var/lib/memaudit
# Mount the index read-only here, e.g. `-v /srv/index:/index:ro`.
ENV MEMAUDIT_INDEX=/index
ENTRYPOINT ["/usr/local/bin/memaudit"]
CMD ["--help"]
