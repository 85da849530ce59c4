#!/usr/bin/env bash
# The TTS recipe template shared by every corpus (egs/<corpus>/tts1/run.sh sets
# the variables below and calls this script). Each stage is one `speechkd`
# call per split; logic lives in the library. Stages:
#   0  corpus preparation (local/data.sh) -> data/{train,dev,test}, validated
#   1  text frontend -> data/token_list/<kind>/tokens.txt, dump/tokens/<split>
#   2  features (mel, F0, energy; --nj parallel through $train_cmd) -> dump/feats/<split>
#   3-12 (teachers, students, synthesis, evaluation, listening) come with later work.
set -euo pipefail

recipes=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
help_message="Usage: $0 [--stage N] [--stop_stage M] [--nj J] [--preset demo|quality|tiny] [--force true]"

# ---- options (each may be given as --name value) ----
stage=0                 # first stage to run
stop_stage=100          # last stage to run
nj=2                    # parallel jobs for features and evaluation
preset=demo             # tiny (tests) | demo (make demo) | quality (RESULTS.md)
force=false             # redo stages even when their .done marker exists
train_set=train
dev_set=dev
test_set=test
token_kind=phoneme      # phoneme | char
feats_config=conf/feats.yaml
local_data_opts=""      # passed to local/data.sh
num_eval_utts=50        # utterances for the ground-truth intelligibility baseline
dumpdir=dump
expdir=exp

. "$recipes/utils/parse_options.sh"
. "$recipes/lib.sh"
[ -f ./path.sh ] && . ./path.sh
[ -f ./cmd.sh ] && . ./cmd.sh
train_cmd=${train_cmd:-$recipes/utils/run.pl}
markers=$expdir/.done
logdir=$expdir/log

log "$0 $* (preset=$preset, stages $stage..$stop_stage)"

stage_data() {
  local/data.sh --preset "$preset" --nj "$nj" $local_data_opts
  for s in "$train_set" "$dev_set" "$test_set"; do
    speechkd data validate "data/$s"
  done
}

stage_text() {
  local tl=data/token_list/$token_kind/tokens.txt
  speechkd text --data-dir "data/$train_set" --kind "$token_kind" \
    --out "$dumpdir/tokens/$train_set" --build-token-list "$tl"
  for s in "$dev_set" "$test_set"; do
    # A phone the training set never saw becomes <unk>, listed in unknown_symbols.txt.
    speechkd text --data-dir "data/$s" --out "$dumpdir/tokens/$s" --token-list "$tl" --on-unknown map
  done
}

stage_features() {
  speechkd features --data-dir "data/$train_set" --out "$dumpdir/feats/$train_set" \
    --config "$feats_config" --nj "$nj" --cmd "$train_cmd"
  for s in "$dev_set" "$test_set"; do
    speechkd features --data-dir "data/$s" --out "$dumpdir/feats/$s" --config "$feats_config" \
      --nj "$nj" --cmd "$train_cmd" --stats-from "$dumpdir/feats/$train_set/stats.npz"
  done
}

stage_baseline_asr() {
  # Intelligibility baseline: the offline recogniser on ground-truth test audio.
  speechkd eval asr --data-dir "data/$test_set" --num-utts "$num_eval_utts" --nj "$nj" \
    --out "$expdir/eval/asr_ground_truth" --title "Ground-truth test audio ($num_eval_utts utts)"
}

run_stage 0 data stage_data
run_stage 1 text stage_text
run_stage 2 features stage_features
run_stage 11 baseline_asr stage_baseline_asr

log "Done. Data: data/, features: $dumpdir/feats/, results: $expdir/eval/"
