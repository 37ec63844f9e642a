# rung in a container: a static binary on a small base.
FROM golang:1.27.3 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /rung ./cmd/rung

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /rung /rung
EXPOSE 8080
ENTRYPOINT ["/rung"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
