# syntax=docker/dockerfile:1
# rung in a container: a static binary on a small base, for linux/amd64 and linux/arm64.
#   docker buildx build --platform linux/amd64,linux/arm64 -t rung .
#   docker run -e RUNG_API_TOKEN=... -p 8080:8080 -v rung:/data rung
#
# The build stage runs on the builder's own platform and cross-compiles for the target
# one: no emulation, and without cgo every package builds for either (the SQLite driver,
# modernc.org/sqlite, is pure Go).
FROM --platform=$BUILDPLATFORM golang:1.27.3 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/rung ./cmd/rung
# The data directory, made here because the final stage has no shell; copied with its
# owner, so a fresh named volume mounted on it starts out writable by the nonroot user.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rung /rung
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV RUNG_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/rung"]
# Off loopback the private surfaces need a token: set RUNG_API_TOKEN, or rung refuses
# to start (see "Exposing rung to the internet" in the README).
CMD ["serve", "--listen", "0.0.0.0:8080"]
