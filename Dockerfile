# One image for both services; the command picks the binary:
#   docker run IMAGE inventiv-api
#   docker run IMAGE inventiv-orchestrator
# (docker-compose.yml does exactly that.)
# openssh-client: the orchestrator installs workers over SSH, the API
# verifies the organizations' hosts over SSH (both with ssh-keygen too).

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin inventiv-api --bin inventiv-orchestrator \
 && install -D -m 755 target/release/inventiv-api /out/inventiv-api \
 && install -D -m 755 target/release/inventiv-orchestrator /out/inventiv-orchestrator

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/inventiv --create-home inventiv
COPY --from=builder /out/ /usr/local/bin/
COPY sqlx-migrations/ /app/sqlx-migrations/
WORKDIR /app
ENV INVENTIV_STATE_DIR=/var/lib/inventiv \
    INVENTIV_API_ADDR=0.0.0.0:8003 \
    INVENTIV_ORCHESTRATOR_ADDR=0.0.0.0:8001 \
    RUST_LOG=info
USER inventiv
EXPOSE 8003 8001
CMD ["inventiv-api"]
