#!/usr/bin/env bash
# mini_multi: five synthetic voices of five people (flite kal16/awb/rms/slt, festival's ked diphones),
# speaker ids in utt2spk. Built-in, 16 kHz.
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/tts.sh \
  --token_kind phoneme \
  --feats_config conf/feats.yaml \
  --num_eval_utts 50 \
  "$@"
