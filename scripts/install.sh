#!/usr/bin/env bash
# The one install step shared by `make`, CI and the Dockerfile: dlrun and its locked dependencies.
# usage: scripts/install.sh VENV_DIR [EXTRAS]   (VENV_DIR "-" installs into the current interpreter;
#        EXTRAS defaults to dev, "" for none, "gpu" for the CUDA wheels)
set -euo pipefail
venv=${1:-.venv}
extras=${2-dev}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$venv" = "-" ]; then
  py=python3
else
  if [ ! -x "$venv/bin/python" ]; then
    base=$(command -v python3.11 || command -v python3)
    "$base" -m venv "$venv"
  fi
  py="$venv/bin/python"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$py" -m pip install --quiet --upgrade "pip>=24"
spec="$root"
[ -n "$extras" ] && spec="$root[$extras]"
# DLRUN_CONSTRAINTS: the image (and bare-metal GPU hosts) use the lock plus pinned CUDA wheels,
# requirements/docker-constraints.txt, both written by scripts/lock.sh.
"$py" -m pip install --quiet -c "${DLRUN_CONSTRAINTS:-$root/requirements/lock.txt}" -e "$spec"
