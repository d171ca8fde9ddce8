#!/usr/bin/env bash
# The reverse proxy's configuration (deploy/nginx/) is tested with Debian's nginx: `nginx -t`, and nginx run
# on this machine in front of real gunicorn processes (tests/deploy/test_proxy.py). Installed here when
# missing, the way ensure-chromium.sh installs Chromium. The package would start a system nginx on port 80
# from its post-install script; a temporary policy-rc.d (the Debian way to say "start no service") stops
# that, so nothing but the tests' own nginx processes ever runs. NGINX_PATH overrides the binary.
set -euo pipefail
nginx=${NGINX_PATH:-/usr/sbin/nginx}
if [ -x "$nginx" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-nginx: $nginx is missing and apt-get is not available; install nginx and set NGINX_PATH" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "ensure-nginx: installing Debian's nginx with apt-get (no service is started)"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    added_policy=1
fi
trap '[ -z "$added_policy" ] || $sudo rm -f "$policy"' EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null
[ -x "$nginx" ] || { echo "ensure-nginx: nginx installed but $nginx not found" >&2; exit 1; }
