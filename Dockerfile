# The berth controller image: one static binary, and git, which upgrades over
# the air commit and push with (reading the repository needs none: go-git is
# inside); CA certificates for HTTPS remotes; running as a non-root user.
#   docker build -t berth:latest .
#   berth bootstrap --image berth:latest --repo URL
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X berth.dev/berth/internal/buildinfo.version=${VERSION}" -o /out/berth ./cmd/berth

FROM debian:trixie-slim
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/berth /berth
USER 65532:65532
ENV HOME=/tmp
ENTRYPOINT ["/berth"]
CMD ["controller"]
