# The recipe's environment: the shared one (virtual environment, recipes/utils on PATH).
. "$(dirname "${BASH_SOURCE[0]}")/../../../recipes/path.sh"
