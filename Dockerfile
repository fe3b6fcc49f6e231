# Sluice container image: a static binary on a small base, running as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --always) -t sluice .
#   docker run -v sluice-data:/var/lib/sluice -v $PWD/etc:/etc/sluice:ro \
#     -p 8883:8883 -p 127.0.0.1:9484:9484 sluice
#
# The default command runs /etc/sluice/sluice.yaml, a copy of configs/production.yaml: TLS,
# passwords and ACLs, so it needs users.yaml and tls/ mounted under /etc/sluice (mount your
# own sluice.yaml there too, or see deploy/docker-compose.yml). Data lives in the volume
# /var/lib/sluice. Multi-platform: docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 .

FROM --platform=$BUILDPLATFORM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
ARG TARGETVARIANT
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOARM=${TARGETVARIANT#v} \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /out/sluice ./cmd/sluice

FROM alpine:3.22
RUN addgroup -S -g 10001 sluice && adduser -S -u 10001 -G sluice -h /var/lib/sluice sluice \
 && mkdir -p /etc/sluice /var/lib/sluice && chown sluice:sluice /var/lib/sluice
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY configs/production.yaml /etc/sluice/sluice.yaml
COPY configs/users.example.yaml /usr/share/sluice/users.example.yaml
USER sluice:sluice
# The admin listener must leave the container's loopback to be published; publish it to the
# host's loopback only (-p 127.0.0.1:9484:9484).
ENV SLUICE_DATA_DIR=/var/lib/sluice \
    SLUICE_HTTP_ADDR=0.0.0.0:9484 \
    SLUICE_ETC=/etc/sluice
VOLUME ["/var/lib/sluice"]
EXPOSE 8883 8884 9484
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:9484/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "--config", "/etc/sluice/sluice.yaml"]
