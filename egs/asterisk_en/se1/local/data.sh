#!/usr/bin/env bash
# Stage 0 of asterisk_en/se1: real speech (the Asterisk prompts, G.722 decoded by Debian ffmpeg)
# and the built-in noise corpus.
set -euo pipefail
preset=demo
seed=1
nj=2
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny)         opts="--num-utts 24 --num-dev 2 --num-test 2" ;;
  demo|quality) opts="--num-dev 25 --num-test 50" ;;   # the whole corpus (550 prompts, ~24 min)
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
# shellcheck disable=SC2086
speechkd corpus asterisk_en --out data/speech --seed "$seed" --nj "$nj" $opts
speechkd corpus noise --out data/noise --seed "$seed" --nj "$nj"
