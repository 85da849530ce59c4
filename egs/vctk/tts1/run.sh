#!/usr/bin/env bash
# VCTK 0.92: 110 speakers (p315's transcripts are lost: skipped, counted in the stage-0 log), 48 kHz FLAC
# resampled once to 22.05 kHz (data/wav/; conf/feats.yaml: the HiFi-GAN convention).
#   ./run.sh --db_root /data/VCTK-Corpus-0.92
#   ./run.sh --db_root /data/VCTK-Corpus-0.92 --local_data_opts "--mic mic2"         # the other microphone
#   ./run.sh --db_root /data/VCTK-Corpus-0.92 --local_data_opts "--speakers p225"    # one voice
#   ./run.sh --local_data_opts "--download true"      # fetch the corpus into downloads/ first (11 GB)
# Multi-speaker: every model learns one embedding per speaker (the split is by sentence, so every
# test voice is a training voice; synthesis speaks each test utterance with its own speaker);
# "--speakers pNNN" trains a single-speaker model of one voice.
# Options given here override the defaults below (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/tts.sh \
  --token_kind phoneme \
  --frontend_config conf/frontend.yaml \
  --feats_config conf/feats.yaml \
  --num_eval_utts 50 \
  "$@"
