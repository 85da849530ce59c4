#!/usr/bin/env bash
# Stage 0 of mini_multi: generate the multi-speaker corpus into data/.
set -euo pipefail
preset=demo
seed=1
nj=2
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny)    num_utts=24 ;;
  demo)    num_utts=400 ;;
  quality) num_utts=1600 ;;
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
speechkd corpus mini_multi --out data --num-utts "$num_utts" --seed "$seed" --nj "$nj"
