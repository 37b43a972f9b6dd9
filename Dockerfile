# The emulator image: a static binary on scratch, running as a non-root user.
#
# GO_IMAGE is the builder image. The default is the official Go image; on a
# machine without a registry, build one locally with
# scripts/build-builder-image.sh and pass GO_IMAGE=iothub-go-builder:local.
ARG GO_IMAGE=golang:1.26

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags="-s -w" -o /out/iothub-emulator ./cmd/iothub-emulator \
 && go build -trimpath -ldflags="-s -w" -o /out/dmpatterns-device ./examples/dmpatterns/device \
 && go build -trimpath -ldflags="-s -w" -o /out/dmpatterns-service ./examples/dmpatterns/service \
 && mkdir -p /out/data /out/storage-certs

# The tutorial's two sample apps (docker compose --profile tutorial).
FROM scratch AS samples
COPY --from=build /out/dmpatterns-device /out/dmpatterns-service /
USER 65532:65532

# The emulator (default target). It listens on 443, 8883 and 5671 inside the
# container as a non-root user: Docker (20.10 and later) lets containers
# bind ports below 1024 without privileges.
FROM scratch AS emulator
COPY --from=build /out/iothub-emulator /iothub-emulator
COPY --from=build --chown=65532:65532 /out/data /data
# issue-cert writes Azurite's certificate here (a compose volume).
COPY --from=build --chown=65532:65532 /out/storage-certs /storage-certs
USER 65532:65532
ENV IOTHUB_DATA_DIR=/data
VOLUME /data
EXPOSE 8883 443 5671 5672
HEALTHCHECK --interval=2s --timeout=3s --start-period=2s --retries=15 CMD ["/iothub-emulator", "healthcheck"]
ENTRYPOINT ["/iothub-emulator"]
