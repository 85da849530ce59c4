#!/usr/bin/env bash
# mini_en speech enhancement: built-in speech of many voices (the five mini_multi voices, flite and
# festival, and the real Asterisk recordings) mixed with built-in noise (synthetic noises
# high-passed at 100 Hz, babble of espeak-ng voices, freely licensed recordings). Voices rms and ked,
# pink noise and the lmms samples (music loops, instruments) are kept out of training, so the test
# sets separate the two generalisations (babble is a training type: a model that never heard
# competing talkers keeps them as speech, even trained on clean targets):
#   test_in_domain           seen voices,   seen noise types (held-out clips)
#   test_unseen_noise        seen voices,   unseen noise types
#   test_unseen_voice        unseen voices, seen noise types
#   test_unseen_voice_noise  unseen voices, unseen noise types
#   test_mismatched          seen voices,   event sounds (no in-domain type)
# each at 0, 5 and 10 dB. Configs: the shared recipes/conf/*_<preset>.yaml (a
# conf/<name>_<preset>.yaml here would override one).
#   ./run.sh [--preset demo|quality] [--stage N --stop_stage M]
# Options given here override the defaults (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/se.sh \
  --speech_dirs "data/speech_multi data/speech_asterisk" \
  --se_data_opts "--unseen-speakers rms ked --unseen-noise-types pink lmms" \
  --test_sets "test_in_domain test_unseen_noise test_unseen_voice test_unseen_voice_noise test_mismatched" \
  "$@"
