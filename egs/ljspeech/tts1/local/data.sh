#!/usr/bin/env bash
# Stage 0 of ljspeech/tts1: Kaldi data dirs of LJSpeech 1.1 read in place -> data/{train,dev,test}.
# The rate of wav.scp is conf/feats.yaml's sample_rate (22050: the files themselves).
set -euo pipefail
preset=demo
nj=2
db_root=
. ./db.sh
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny) held_out="--num-dev 2 --num-test 2" ;;        # tests (replicas of a few clips)
  demo|quality) held_out="--num-dev 250 --num-test 250" ;;
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
rate=$(awk '/^sample_rate:/ {print $2}' conf/feats.yaml)
# shellcheck disable=SC2086
speechkd prepare ljspeech --db-root "$db_root" --out data --rate "$rate" --nj "$nj" $held_out
