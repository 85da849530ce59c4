# Environment of every recipe (sourced by egs/<corpus>/<task>/path.sh): the project's
# virtual environment and the shared utils (run.pl, slurm.pl, parse_options.sh).
SPEECHKD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -f "$SPEECHKD_ROOT/tools/venv/bin/activate" ]; then
  . "$SPEECHKD_ROOT/tools/venv/bin/activate"
fi
command -v speechkd >/dev/null || { echo "speechkd is not installed: run 'make install' in $SPEECHKD_ROOT" >&2; return 1; }
export PATH=$SPEECHKD_ROOT/recipes/utils:$PATH
export PYTHONUNBUFFERED=1
