#!/usr/bin/env bash
# Stage 0 of mini_en/se1: speech of every built-in voice and the noise corpus.
#   data/speech_multi     mini_multi: flite slt, kal16, awb, rms and festival ked, WordNet sentences
#   data/speech_asterisk  asterisk_en: real recordings of one talker (Allison), telephony prompts
#   data/noise            the noise corpus (in-domain types and event sounds)
# Which voices and noise types stay out of training is decided by stage 1 (run.sh: --se_data_opts).
set -euo pipefail
preset=demo
seed=1
nj=2
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  # mini_multi's dev/test hold at least one utterance per voice (6)
  tiny)    multi="--num-utts 36 --num-dev 6 --num-test 6";    asterisk="--num-utts 12 --num-dev 2 --num-test 2" ;;
  demo)    multi="--num-utts 600 --num-dev 30 --num-test 30"; asterisk="--num-dev 25 --num-test 20" ;;
  quality) multi="--num-utts 1200 --num-dev 60 --num-test 60"; asterisk="--num-dev 25 --num-test 40" ;;
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
# shellcheck disable=SC2086
speechkd corpus mini_multi --out data/speech_multi --seed "$seed" --nj "$nj" $multi
# shellcheck disable=SC2086
speechkd corpus asterisk_en --out data/speech_asterisk --seed "$seed" --nj "$nj" $asterisk
speechkd corpus noise --out data/noise --seed "$seed" --nj "$nj"
