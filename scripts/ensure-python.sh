#!/usr/bin/env bash
# Make sure the given Python (3.11+) can create a virtual environment; on Debian/Ubuntu the venv
# module (ensurepip) comes in a separate package, installed here when missing.
set -euo pipefail
python=${1:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    echo "ensure-python: no $python found; install Python 3.11 (apt-get install python3.11)" >&2
    exit 1
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "ensure-python: $python is older than 3.11" >&2; exit 1; }
if "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    exit 0
fi
version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "ensure-python: installing python${version}-venv with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "python${version}-venv" || $sudo apt-get install -y -qq python3-venv
