#!/usr/bin/env bash
# mini_en speech enhancement: built-in flite speech mixed with built-in noise
# (synthetic noises high-passed at 100 Hz, babble, CC0 recordings). Configs: the shared
# recipes/conf/*_<preset>.yaml (a conf/<name>_<preset>.yaml here would override one).
#   ./run.sh [--preset demo|quality] [--stage N --stop_stage M]
# Options given here override the defaults (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/se.sh "$@"
