#!/usr/bin/env bash
# Sets up everything speechkd needs on a fresh Debian machine: system packages,
# then a virtual environment in tools/venv with torch (CPU) and the package in
# editable mode with its eval, dev and se-peers (DNSMOS, RNNoise) extras. Idempotent: a second run only
# checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${SPEECHKD_VENV:-$root/tools/venv}
stamp=$venv/.speechkd-installed
python=${PYTHON:-python3}

bash tools/install_system.sh

# Reinstall the Python side only when the package metadata changed.
want=$(cat setup.cfg pyproject.toml | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import speechkd" 2>/dev/null; then
  echo "install: venv up to date ($venv)"
  exit 0
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip() {  # quiet pip; drop the harmless notes about absent local index folders
  "$venv/bin/pip" install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip --upgrade "pip>=23" "setuptools<81" wheel
# torch first, pinned: a CPU build of 2.13.0 (a loose requirement would pull a CUDA build).
pip "torch==2.13.0"
pip -e ".[all]"   # all = eval + dev + se-peers (speechmos, onnxruntime, pyrnnoise)
echo "$want" > "$stamp"
echo "install: done ($venv, $(du -sh "$venv" | cut -f1))"
