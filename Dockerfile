# Builds the mqim server image used by docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/mqim ./cmd/mqim

FROM debian:bookworm-slim
# /data holds the database and the secrets: only mqim may enter it. A new
# named volume mounted there starts with this owner and mode.
RUN useradd --system --home /data mqim && mkdir -p /data && chown mqim /data && chmod 0700 /data
COPY --from=build /out/mqim /usr/local/bin/mqim
COPY configs/mqim.yaml /etc/mqim/mqim.yaml
USER mqim
VOLUME /data
EXPOSE 1883 8083 8080
ENTRYPOINT ["mqim", "serve", "--config", "/etc/mqim/mqim.yaml", "--data", "/data"]
