#!/usr/bin/env bash
# mini_multi: several synthetic voices (flite kal16/awb/rms/slt, festival diphone and HTS voices),
# speaker ids in utt2spk. Built-in, 16 kHz.
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/tts.sh \
  --token_kind phoneme \
  --feats_config conf/feats.yaml \
  --num_eval_utts 50 \
  "$@"
