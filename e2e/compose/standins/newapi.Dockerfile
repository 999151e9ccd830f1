# calciumion/new-api:latest stand-in; context: the new-api binary.
FROM sentinel-standin/bookworm:minbase
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata wget \
 && rm -rf /var/lib/apt/lists/*
COPY new-api /new-api
WORKDIR /data
EXPOSE 3000
ENTRYPOINT ["/new-api"]
