#!/usr/bin/env bash
# Install bertcls and everything it needs on a fresh machine, from this repo's own files, into a virtual
# environment (see scripts/venv.sh: the active one, else ./.venv).
# torch goes first and pinned: 2.13.0 is the CPU build on local disk; any unpinned torch requirement would
# otherwise pull a multi-GB CUDA build from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ".[all${BERTCLS_EXTRA:+,$BERTCLS_EXTRA}]"
echo "bertcls installed in $BIN (activate it with: . $BIN/activate)"
