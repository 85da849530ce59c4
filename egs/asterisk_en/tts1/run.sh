#!/usr/bin/env bash
# asterisk_en: real recorded speech, one speaker (Allison), ~560 Asterisk telephony prompts
# (Debian asterisk-core-sounds-en-g722, CC-BY-SA-3.0; generated at run time, never committed).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/tts.sh \
  --token_kind phoneme \
  --feats_config conf/feats.yaml \
  --num_eval_utts 50 \
  "$@"
