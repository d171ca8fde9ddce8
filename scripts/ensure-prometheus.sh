#!/usr/bin/env bash
# The alert and recording rules (deploy/prometheus/) are checked with Debian's promtool (`promtool check rules`,
# `promtool test rules`), and the dashboard's expressions are run by Debian's Prometheus against the services
# started on this machine (tests/deploy/test_prometheus.py). Installed here when missing, the way
# ensure-nginx.sh installs nginx; apt-install.sh keeps the package from starting a system Prometheus, so only
# the tests' own Prometheus (on its own port, its data in a temporary folder) ever runs.
# PROMETHEUS_PATH and PROMTOOL_PATH override the binaries.
set -euo pipefail
prometheus=${PROMETHEUS_PATH:-/usr/bin/prometheus}
promtool=${PROMTOOL_PATH:-/usr/bin/promtool}
if [ -x "$prometheus" ] && [ -x "$promtool" ]; then
    exit 0
fi
"$(dirname "$0")/apt-install.sh" ensure-prometheus prometheus
for binary in "$prometheus" "$promtool"; do
    [ -x "$binary" ] || { echo "ensure-prometheus: prometheus installed but $binary not found" >&2; exit 1; }
done
