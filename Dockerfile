# The platform's container image: the release binary, run as an unprivileged user, data on /data.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tenantscope

FROM debian:bookworm-slim
RUN useradd --system --home /data --uid 10001 tenantscope \
    && mkdir -p /data && chown tenantscope /data && chmod 0700 /data
COPY --from=build /src/target/release/tenantscope /usr/local/bin/tenantscope
USER tenantscope
ENV TENANTSCOPE_DATA_DIR=/data
VOLUME /data
EXPOSE 8787
ENTRYPOINT ["/usr/local/bin/tenantscope"]
CMD ["serve", "--listen", "0.0.0.0:8787"]
