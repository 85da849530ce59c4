#!/usr/bin/env bash
# Stage 0 of libritts_r/tts1: Kaldi data dirs of LibriTTS-R read in place -> data/{train,dev,test}.
#   --subsets train-clean-100,train-clean-360   training subsets (comma-separated; train-other-500 too)
# The rate of wav.scp is conf/feats.yaml's sample_rate (24000: the files themselves).
set -euo pipefail
preset=demo
nj=2
db_root=
subsets=train-clean-100
. ./db.sh
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny|demo|quality) ;;   # the subsets are the splits: every preset reads them whole
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
rate=$(awk '/^sample_rate:/ {print $2}' conf/feats.yaml)
# shellcheck disable=SC2086
speechkd prepare libritts_r --db-root "$db_root" --out data --rate "$rate" --nj "$nj" --subsets ${subsets//,/ }
