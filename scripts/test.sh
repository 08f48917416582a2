#!/usr/bin/env bash
# Install bertcls with its test extras (and Debian's chromium for the web-page test), run the tests with
# the same virtual environment's Python (see scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BERTCLS_EXTRA=dev bash scripts/install.sh
. scripts/venv.sh
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped"
fi
export HF_HUB_OFFLINE=1
"$PY" -m pytest -q
