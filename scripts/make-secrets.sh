#!/usr/bin/env bash
# Creates ./secrets/ for docker-compose.yml with random values (existing files are kept) and
# prints the admin password. Usage: scripts/make-secrets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
mkdir -p secrets
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
new() { [ -s "secrets/$1" ] || printf '%s' "$2" > "secrets/$1"; }
new postgres_password "$(rand)"
new database_url "postgres://sentinel:$(cat secrets/postgres_password)@postgres:5432/sentinel?sslmode=disable"
new redis_password "$(rand)"
new sentinel_hmac_secret "$(rand)"
new sentinel_internal_token "$(rand)"
new admin_password "$(rand | head -c 20)"
new admin_jwt_secret "$(rand)"
new alert_webhook_secret "$(rand)"
# The containers read these as non-root users.
chmod 0644 secrets/*
echo "secrets/ ready. Admin login: admin / $(cat secrets/admin_password)"
