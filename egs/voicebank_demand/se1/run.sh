#!/usr/bin/env bash
# VoiceBank-DEMAND speech enhancement: the published noisy/clean pairs (48 kHz, read in place from --db_root,
# default in db.sh, resampled once to 16 kHz into data/se/wav/), evaluated on the standard 824-utterance test set (p232, p257).
# The noisy-target methods (NyTT teacher, remix students) train on the NOISY training set only; its clean
# speech is read by the clean-target upper bound and by evaluation alone. Extra noise n' of NyTT: the built-in
# noise corpus, or any directory of noise recordings (e.g. DEMAND's) with --local_data_opts "--noise_root DIR".
#   ./run.sh --db_root /data/VoiceBank-DEMAND
#   ./run.sh --db_root /data/VoiceBank-DEMAND --local_data_opts "--variant 56spk --noise_root /data/DEMAND"
# Configs: the shared recipes/conf/*_<preset>.yaml (a conf/<name>_<preset>.yaml here would override one).
# Options given here override the defaults (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/se.sh \
  --premixed true \
  --test_sets test_voicebank \
  "$@"
