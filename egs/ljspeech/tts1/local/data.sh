#!/usr/bin/env bash
# Stage 0 of ljspeech/tts1: Kaldi data dirs of LJSpeech 1.1 read in place -> data/{train,dev,test}.
# The rate of wav.scp is conf/feats.yaml's sample_rate (22050: the files themselves).
set -euo pipefail
preset=demo
nj=2
db_root=
download=false       # true: fetch the official archive into db_root's parent first (resumable, SHA-256 checked)
download_url=        # another URL of the archive (a mirror)
download_sha256=     # its SHA-256, when not the pinned archive's
. ./db.sh
. ../../../recipes/utils/parse_options.sh

case "$preset" in
  tiny) held_out="--num-dev 2 --num-test 2" ;;        # tests (replicas of a few clips)
  demo|quality) held_out="--num-dev 250 --num-test 250" ;;
  *) echo "$0: unknown preset '$preset' (tiny|demo|quality)" >&2; exit 1 ;;
esac
if [ "$download" = true ]; then
  # the archive unpacks to <parent>/LJSpeech-1.1: db_root must end in LJSpeech-1.1
  speechkd download ljspeech --dest "$(dirname "$db_root")" ${download_url:+--url "$download_url"} \
    ${download_sha256:+--sha256 "$download_sha256"}
fi
rate=$(awk '/^sample_rate:/ {print $2}' conf/feats.yaml)
# shellcheck disable=SC2086
speechkd prepare ljspeech --db-root "$db_root" --out data --rate "$rate" --nj "$nj" $held_out
