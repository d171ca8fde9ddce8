#!/usr/bin/env bash
# Prints a development .env with fresh random secrets (used once by `make up`).
set -euo pipefail
rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(36))'; }
cat <<ENV
# Development settings for \`make up\`; generated once, git-ignored. Production sets these in its
# secret store instead (see README: Configuration).
CAFEFLOW_ENV=development
CAFEFLOW_SECRET_KEY=$(rand)
CAFEFLOW_ADMIN_TOKEN=$(rand)
DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cafeflow
REDIS_URL=redis://127.0.0.1:6379/0
ENV
