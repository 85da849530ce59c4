#!/usr/bin/env bash
# mini_en: flite voice "slt" reading WordNet example sentences (built-in, 16 kHz, one speaker).
#   ./run.sh                       # demo preset, all stages
#   ./run.sh --preset quality      # the preset behind RESULTS.md
#   ./run.sh --stage 2 --stop_stage 2 --nj 2
# Options given here override the defaults below (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/tts.sh \
  --token_kind phoneme \
  --frontend_config conf/frontend.yaml \
  --feats_config conf/feats.yaml \
  --num_eval_utts 50 \
  "$@"
