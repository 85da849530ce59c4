#!/usr/bin/env bash
# asterisk_en speech enhancement: real recorded speech (Allison's Asterisk telephony prompts,
# Debian asterisk-core-sounds-en-g722, CC-BY-SA-3.0; decoded at run time, never committed)
# mixed with the built-in noise corpus. Configs: the shared recipes/conf/*_<preset>.yaml
# (a conf/<name>_<preset>.yaml here would override one).
#   ./run.sh [--preset demo|quality] [--stage N --stop_stage M]
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/se.sh "$@"
