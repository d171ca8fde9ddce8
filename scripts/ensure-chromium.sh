#!/usr/bin/env bash
# The page tests (orders /app, reporting /dashboard) drive Debian's Chromium through Playwright.
# Playwright's own browser download needs the internet; Debian's package comes from apt, so it is
# installed here when missing. CHROMIUM_PATH overrides the binary.
set -euo pipefail
chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
    exit 0
fi
"$(dirname "$0")/apt-install.sh" ensure-chromium chromium
[ -x "$chromium" ] || { echo "ensure-chromium: chromium installed but $chromium not found" >&2; exit 1; }
