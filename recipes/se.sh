#!/usr/bin/env bash
# The speech-enhancement recipe template shared by every corpus
# (egs/<corpus>/se1/run.sh sets the variables and calls this script). Stages:
#   0  data: speech corpus (training speech, whose clean signals are kept for
#      evaluation only) and noise corpus (in-domain and extraneous sets) -> data/
#   1- (noisy mixtures, noisy-target teacher, remix students, evaluation) come with later work.
set -euo pipefail

recipes=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
help_message="Usage: $0 [--stage N] [--stop_stage M] [--nj J] [--preset demo|quality|tiny] [--force true]"

stage=0
stop_stage=100
nj=2
preset=demo
force=false
local_data_opts=""
expdir=exp

. "$recipes/utils/parse_options.sh"
. "$recipes/lib.sh"
[ -f ./path.sh ] && . ./path.sh
[ -f ./cmd.sh ] && . ./cmd.sh
markers=$expdir/.done
logdir=$expdir/log

log "$0 $* (preset=$preset, stages $stage..$stop_stage)"

stage_data() {
  local/data.sh --preset "$preset" --nj "$nj" $local_data_opts
  for d in data/speech/train data/speech/dev data/speech/test data/noise/in_domain data/noise/extraneous; do
    speechkd data validate "$d"
  done
}

run_stage 0 data stage_data

log "Done. Data: data/speech/{train,dev,test}, data/noise/{in_domain,extraneous}"
