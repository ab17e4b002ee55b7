# The operator's image: `docker build -t gitops-reverser:0.1.0 .` (or podman, buildah, kaniko).
# A Rust builder, then a scratch image holding only the binary, the shared libraries it links
# (glibc, OpenSSL for libgit2's HTTPS, zlib), the CA bundle and a non-root user: no shell, no
# package manager. scripts/image builds the same image offline from a local binary.
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gitops-reverser-runtime --bin gitops-reverser \
 && scripts/image-rootfs target/release/gitops-reverser /rootfs

FROM scratch
COPY --from=build /rootfs/ /
# COPY makes files root's: the work dir is given back to the user it runs as.
COPY --from=build --chown=65532:65532 /rootfs.work/ /var/lib/gitops-reverser/
USER 65532:65532
WORKDIR /var/lib/gitops-reverser
ENTRYPOINT ["/gitops-reverser"]
CMD ["run"]
