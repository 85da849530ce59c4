#!/usr/bin/env bash
# Stage 0 of mini_en: generate the corpus (flite "slt" + WordNet prompts) into data/.
set -euo pipefail
preset=demo
seed=1
nj=2
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny)    num_utts=24;   held_out="--num-dev 2 --num-test 2" ;;    # tests
  demo)    num_utts=600;  held_out="--num-dev 30 --num-test 50" ;;  # make demo
  quality) num_utts=1200; held_out="--num-dev 50 --num-test 100" ;; # RESULTS.md
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
# shellcheck disable=SC2086
speechkd corpus mini_en --out data --num-utts "$num_utts" --seed "$seed" --nj "$nj" $held_out
