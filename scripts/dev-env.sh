#!/usr/bin/env bash
# Prints a development .env with fresh random secrets (used once by `make up`).
# `dev-env.sh --missing FILE` prints only the lines FILE lacks (an .env written before a setting existed).
set -euo pipefail
rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(36))'; }
if [[ "${1:-}" == "--missing" ]]; then
  # Flower's basic auth (cafeflow up starts Flower with it); added to older .env files by make up.
  grep -q '^FLOWER_BASIC_AUTH=' "$2" || echo "FLOWER_BASIC_AUTH=cafeflow:$(rand)"
  exit 0
fi
cat <<ENV
# Development settings for \`make up\`; generated once, git-ignored. Production sets these in its
# secret store instead (see README: Configuration).
CAFEFLOW_ENV=development
CAFEFLOW_SECRET_KEY=$(rand)
CAFEFLOW_ADMIN_TOKEN=$(rand)
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cafeflow
REDIS_URL=redis://127.0.0.1:6379/0
# Flower (http://127.0.0.1:5555, started by cafeflow up) asks for this user and password.
FLOWER_BASIC_AUTH=cafeflow:$(rand)
ENV
