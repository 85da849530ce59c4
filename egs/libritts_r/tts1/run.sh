#!/usr/bin/env bash
# LibriTTS-R: multi-speaker audiobook speech restored by Miipher, 24 kHz, read in place from --db_root
# (default in db.sh). Train: the subsets chosen (train-clean-100 by default); dev: dev-clean; test: test-clean.
#   ./run.sh --db_root /data/LibriTTS_R
#   ./run.sh --db_root /data/LibriTTS_R --local_data_opts "--subsets train-clean-100,train-clean-360"
# Features (conf/feats.yaml): 24 kHz, n_fft 1024, hop 256, 100 mels up to 12 kHz (the Vocos / BigVGAN
# 24 kHz convention). dev-clean and test-clean speakers never occur in train-clean-*, and a speaker
# table has no row for a voice it never heard, so the models here learn an average voice
# (data.speakers=none); a split holding out utterances of the training speakers is still to come.
# Options given here override the defaults below (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/tts.sh \
  --token_kind phoneme \
  --frontend_config conf/frontend.yaml \
  --feats_config conf/feats.yaml \
  --num_eval_utts 50 \
  --teacher_opts data.speakers=none \
  --student_opts data.speakers=none \
  --diffusion_opts data.speakers=none \
  "$@"
