#!/usr/bin/env bash
# Stage 0 of voicebank_demand/se1: the SE sets of VoiceBank-DEMAND read in place -> data/se
# (train_noisy, train_clean_eval_only, dev_noisy, dev_clean_eval_only, test_voicebank with ref/, extra_noise).
#   --variant 28spk|56spk          the training set
#   --noise_root DIR               extra noise n' (a Kaldi data dir or a directory of sound files);
#                                  default: the built-in noise corpus's in-domain noise (data/noise)
#   --dev_speakers p226,p287       training speakers held out as the dev set
set -euo pipefail
preset=demo
nj=2
seed=1
db_root=
variant=28spk
noise_root=
dev_speakers=p226,p287
. ./db.sh
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny|demo|quality) ;;   # the corpus's own sets, whole, in every preset
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
if [ -z "$noise_root" ]; then
  speechkd corpus noise --out data/noise --seed "$seed" --nj "$nj"
  noise_root=data/noise/in_domain
fi
speechkd prepare voicebank_demand --db-root "$db_root" --out data/se --rate 16000 --nj "$nj" --variant "$variant" \
  --dev-speakers ${dev_speakers//,/ } --noise-dir "$noise_root"
