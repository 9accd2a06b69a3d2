# The controller image: `make docker-build IMG=...` (docker build -t $(IMG) .).
# Build stage: a static manager binary from ./cmd, for the platform being built
# (docker buildx build --platform linux/amd64,linux/arm64 sets TARGETOS/TARGETARCH).
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Modules first, so source changes do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download

COPY cmd/ cmd/
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o manager ./cmd

# Final stage: distroless static, no shell, non-root (uid and gid 65532, as config/manager's
# runAsNonRoot expects). The controller needs nothing on disk: SSH keys, host keys and registry
# credentials come from Secrets through the API server.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
