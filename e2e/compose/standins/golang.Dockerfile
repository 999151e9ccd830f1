# golang:1.26-bookworm stand-in; context: a Go installation (GOROOT).
FROM sentinel-standin/bookworm:minbase
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/*
COPY . /usr/local/go
ENV GOLANG_VERSION=1.26 GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
