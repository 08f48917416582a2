# Sourced by install.sh, demo.sh and test.sh: the Python that bertcls is installed into and run with.
# The active virtual environment if there is one; else $PYTHON if set; else ./.venv, created here
# (a system Python may refuse pip installs, and a user's other packages must not leak into ours).
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
elif [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
else
  if [ ! -x .venv/bin/python ]; then
    echo "creating a virtual environment in $PWD/.venv"
    python3 -m venv .venv
  fi
  PY="$PWD/.venv/bin/python"
fi
BIN="$(dirname "$PY")"
export PATH="$BIN:$PATH"
