#!/usr/bin/env bash
# Stage 0 of vctk/tts1: Kaldi data dirs of VCTK 0.92 read in place -> data/{train,dev,test}.
#   --mic mic1|mic2       the microphone (mic1: DPA 4035 omni; mic2: Sennheiser MKH 800)
#   --speakers p225,p226  only these speakers (default: all)
# The rate of wav.scp is conf/feats.yaml's sample_rate: the 48 kHz FLAC are resampled once into data/wav/.
set -euo pipefail
preset=demo
nj=2
db_root=
download=false       # true: fetch the official archive into db_root's parent first (resumable, SHA-256 checked)
download_url=        # another URL of the archive (a mirror)
download_sha256=     # its SHA-256, when not the pinned archive's
mic=mic1
speakers=
seed=1
. ./db.sh
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny) held_out="--num-dev 1 --num-test 1" ;;       # tests (replicas of a few utterances); counts are sentences
  demo|quality) held_out="--num-dev 100 --num-test 100" ;;
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
if [ "$download" = true ]; then
  # the archive unpacks to <parent>/VCTK-Corpus-0.92: db_root must end in VCTK-Corpus-0.92
  speechkd download vctk --dest "$(dirname "$db_root")" ${download_url:+--url "$download_url"} \
    ${download_sha256:+--sha256 "$download_sha256"}
fi
rate=$(awk '/^sample_rate:/ {print $2}' conf/feats.yaml)
spk_opts=()
[ -z "$speakers" ] || spk_opts=(--speakers ${speakers//,/ })
# shellcheck disable=SC2086
speechkd prepare vctk --db-root "$db_root" --out data --rate "$rate" --mic "$mic" --seed "$seed" --nj "$nj" \
  "${spk_opts[@]}" $held_out
