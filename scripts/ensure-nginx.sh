#!/usr/bin/env bash
# The reverse proxy's configuration (deploy/nginx/) is tested with Debian's nginx: `nginx -t`, and nginx run
# on this machine in front of real gunicorn processes (tests/deploy/test_proxy.py). Installed here when
# missing, the way ensure-chromium.sh installs Chromium; apt-install.sh keeps the package from starting a
# system nginx, so nothing but the tests' own nginx processes ever runs. NGINX_PATH overrides the binary.
set -euo pipefail
nginx=${NGINX_PATH:-/usr/sbin/nginx}
if [ -x "$nginx" ]; then
    exit 0
fi
"$(dirname "$0")/apt-install.sh" ensure-nginx nginx
[ -x "$nginx" ] || { echo "ensure-nginx: nginx installed but $nginx not found" >&2; exit 1; }
