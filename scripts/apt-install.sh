#!/usr/bin/env bash
# apt-install.sh LABEL PACKAGE...: installs Debian packages for the project's scripts (ensure-chromium.sh,
# ensure-nginx.sh), as root or through sudo. No service is started by a package's post-install script: a
# temporary policy-rc.d (Debian's way to say "start nothing") stands while apt runs, unless one exists.
set -euo pipefail
label=$1
shift
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$label: apt-get is not available; install $* yourself" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "$label: installing Debian's $* with apt-get"
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
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
