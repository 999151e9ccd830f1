# traefik:v3.6.12 stand-in; context: the traefik binary and traefik-entrypoint.sh.
FROM sentinel-standin/bookworm:minbase
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY traefik /usr/local/bin/traefik
COPY traefik-entrypoint.sh /entrypoint.sh
EXPOSE 80
ENTRYPOINT ["/entrypoint.sh"]
CMD ["traefik"]
