#!/usr/bin/env bash
# LJSpeech 1.1: one speaker, ~24 h, 22.05 kHz (features: the HiFi-GAN / FastSpeech 2 convention,
# conf/feats.yaml). The corpus is read in place from --db_root (default in db.sh).
#   ./run.sh --db_root /data/LJSpeech-1.1             # all stages, demo preset
#   ./run.sh --db_root /data/LJSpeech-1.1 --stage 0 --stop_stage 2
#   ./run.sh --local_data_opts "--download true"        # fetch the corpus into downloads/ first (2.6 GB)
# Held-out split: the last 500 clips of metadata.csv, 250 dev then 250 test (local/data.sh).
# Options given here override the defaults below (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/tts.sh \
  --token_kind phoneme \
  --frontend_config conf/frontend.yaml \
  --feats_config conf/feats.yaml \
  --num_eval_utts 50 \
  "$@"
