#!/usr/bin/env bash
# asterisk_en speech enhancement: real recorded speech (Allison's Asterisk telephony prompts,
# Debian asterisk-core-sounds-en-g722, CC-BY-SA-3.0; decoded at run time, never committed)
# mixed with the built-in noise corpus. One real voice, so the voice cells of egs/mini_en/se1 have no
# counterpart here; pink noise and the lmms samples (music loops, instruments) are kept out of training:
#   test_in_domain      seen noise types (held-out clips)
#   test_unseen_noise   unseen noise types
#   test_mismatched     event sounds (no in-domain type)
# each at 0, 5 and 10 dB. Configs: the shared recipes/conf/*_<preset>.yaml
# (a conf/<name>_<preset>.yaml here would override one).
#   ./run.sh [--preset demo|quality] [--stage N --stop_stage M]
# Options given here override the defaults (the last one wins).
set -euo pipefail
cd "$(dirname "$0")"

../../../recipes/se.sh \
  --se_data_opts "--unseen-noise-types pink lmms" \
  --test_sets "test_in_domain test_unseen_noise test_mismatched" \
  "$@"
