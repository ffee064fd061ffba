# Multi-stage build of the Trestle Twilio bridge: a static, CGO-free binary
# on a distroless base, running as a non-root user with /data as its volume.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) -t trestle-twilio .
#   docker run -v trestle-data:/data trestle-twilio        # first run writes /data/config.yaml and exits
#   (edit /data/config.yaml, then)
#   docker run -v trestle-data:/data trestle-twilio -g     # writes /data/registration.yaml
#   docker run -v trestle-data:/data -p 29330:29330 trestle-twilio

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/trestle-bridge/trestle/bridgev2/bridgemain.Version=${VERSION} -X github.com/trestle-bridge/trestle/bridgev2/bridgemain.Commit=${COMMIT}" \
      -o /out/trestle-twilio ./cmd/trestle-twilio

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/trestle-twilio /usr/local/bin/trestle-twilio
# config.yaml, registration.yaml and the SQLite database live here.
VOLUME ["/data"]
WORKDIR /data
USER nonroot:nonroot
EXPOSE 29330
ENTRYPOINT ["/usr/local/bin/trestle-twilio", "-c", "/data/config.yaml", "-r", "/data/registration.yaml"]
