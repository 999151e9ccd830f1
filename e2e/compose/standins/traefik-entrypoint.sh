#!/bin/sh
# As the official image's: arguments that start with "-" are Traefik's flags.
set -e
if [ "${1#-}" != "$1" ]; then set -- traefik "$@"; fi
exec "$@"
