#!/usr/bin/env bash
# The page tests (orders /app, reporting /dashboard) drive Debian's Chromium through Playwright.
# Playwright's own browser download needs the internet; Debian's package comes from apt, so it is
# installed here when missing. CHROMIUM_PATH overrides the binary.
set -euo pipefail
chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $chromium is missing and apt-get is not available; install Chromium and set CHROMIUM_PATH" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "ensure-chromium: installing Debian's chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
[ -x "$chromium" ] || { echo "ensure-chromium: chromium installed but $chromium not found" >&2; exit 1; }
