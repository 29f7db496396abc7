# One image per service, from one Dockerfile: build from the repository root with
#
#   docker build --build-arg SERVICE=decision-coordinator -t decision-fabric/decision-coordinator .
#
# (`make images` builds all seven). SERVICE is a folder under services/: its main
# package is the binary and its config.example.yaml the image's configuration.
# tests/build checks that every services/<name> builds with this file.

FROM golang:1.26-bookworm AS build
ARG SERVICE
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN test -n "${SERVICE}" && test -f "services/${SERVICE}/main.go" \
    || { echo "set --build-arg SERVICE to one of: $(ls services | tr '\n' ' ')" >&2; exit 1; }
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/service "./services/${SERVICE}"

# Distroless static, non-root (uid 65532). The embedded SQLite store is pure Go.
FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
COPY --from=build /out/service /service
COPY services/${SERVICE}/config.example.yaml /etc/decision-fabric/config.yaml
WORKDIR /home/nonroot
USER nonroot:nonroot
# A service listens on its REST port (9201-9207) and that port + 100 for gRPC, as its
# config.example.yaml says; EXPOSE is documentation only, so it names the whole range.
EXPOSE 9201-9207 9301-9307
ENTRYPOINT ["/service", "-config", "/etc/decision-fabric/config.yaml"]
