# The berth controller image: one static binary (go-git inside, so no git
# binary), CA certificates for HTTPS remotes, running as a non-root user.
#   docker build -t berth:latest .
#   berth bootstrap --image berth:latest --repo URL
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X berth.dev/berth/internal/buildinfo.version=${VERSION}" -o /out/berth ./cmd/berth

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/berth /berth
USER 65532:65532
ENV HOME=/tmp
ENTRYPOINT ["/berth"]
CMD ["controller"]
