#!/usr/bin/env bash
# Stage 0 of mini_multi: generate the multi-speaker corpus into data/.
set -euo pipefail
preset=demo
seed=1
nj=2
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny)    num_utts=24;   held_out="--num-dev 6 --num-test 6" ;;
  demo)    num_utts=400;  held_out="--num-dev 24 --num-test 48" ;;
  quality) num_utts=1600; held_out="--num-dev 48 --num-test 96" ;;
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
# shellcheck disable=SC2086
speechkd corpus mini_multi --out data --num-utts "$num_utts" --seed "$seed" --nj "$nj" $held_out
