#!/usr/bin/env bash
# The speech-enhancement recipe template shared by every corpus
# (egs/<corpus>/se1/run.sh sets the variables and calls this script). Each stage
# is one `speechkd` call (stages 0-4: one per split or model); the logic lives in the library. Stages:
#   0  data: speech corpora and noise corpus (local/data.sh) -> $speech_dirs (default data/speech), data/noise
#   1  mixing (speechkd se-data) -> data/se: noisy training speech (its clean speech kept in
#      *_clean_eval_only/ for evaluation only), extra noise, in-domain and mismatched test sets
#      (--premixed true, a corpus published as noisy/clean pairs: stage 0 wrote data/se, checked here)
#   2  noisy-target teacher (NyTT) -> exp/teacher_nytt; clean-target upper bound -> exp/clean_upper
#   3  teacher estimates s^ = T(y) of the training and dev speech -> exp/teacher_nytt/estimates/
#   4  remix students -> exp/<student>; the teacher trained on for the students' extra minutes
#      (same-compute control) -> exp/teacher_nytt_more
#   5  enhancement of the test sets by every system (80 Hz high-pass baseline, RNNoise, teacher, control,
#      students, teacher/student S(T(y)), upper bound) -> exp/<system>/enhanced/<test set>/
#      with --spread K also by each of the last K checkpoints of every trained model alone
#      -> exp/<system>/enhanced_ckpt<k>/<test set>/; the systems are listed in exp/systems.tsv
#      (rules: speechkd/enhance/systems.py)
#   6  evaluation (speechkd eval se-systems: PESQ, STOI, SI-SDR, DNSMOS P.835) of every system and the
#      noisy input -> exp/eval/results.md
#      (with --spread K, each model's row also shows mean [min, max] over its single checkpoints)
#   7  listening-test site of the first test set (clean reference, noisy input, every system)
#      -> exp/listen/index.html
# The whole script is one { ... } block: bash reads all of it before running any of it, so
# editing the recipe while a run is going cannot derail that run.
{
set -euo pipefail

recipes=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
help_message="Usage: $0 [--stage N] [--stop_stage M] [--nj J] [--preset demo|quality|tiny] [--force true] [--spread K]"

stage=0
stop_stage=100
nj=2
preset=demo                 # tiny (tests) | demo | quality
force=false
local_data_opts=""
db_root=""                  # published corpora: where the corpus is (passed to local/data.sh; default in its db.sh)
premixed=false              # true: the corpus is published as noisy/clean pairs (VoiceBank-DEMAND): stage 0
                            # (local/data.sh) writes data/se itself and stage 1 mixes nothing, only validates
speech_dirs=data/speech     # speech corpus roots of stage 0 (several: merged by speechkd se-data)
se_data_opts=""             # e.g. "--train-snr -5 10 --test-snrs 0 5 10"; the generalisation test sets:
                            # "--unseen-speakers rms ked --unseen-noise-types pink lmms" (and add the
                            # test_unseen_* sets to test_sets)
students="student_remix student_small"   # conf/<name>_<preset>.yaml each, trained into exp/<name>;
                            # add student_remix_ema for EMA-teacher rounds (RemixIT)
baselines="hpf80 rnnoise"   # untrained systems on every test set (rnnoise: the pyrnnoise wheel, se-peers extra)
dnsmos=auto                 # DNSMOS P.835 in the evaluation: auto (when speechmos is installed) | on | off
dnsmos_utts=                # DNSMOS of that many utterances of each test set (spread over it; 0: all): its
                            # network costs far more than PESQ/STOI (default: 30; tiny preset 1)
upper_bound=true            # train the same network on clean targets (reads the eval-only clean speech)
control=true                # train the teacher on for the students' extra minutes
average=3                   # enhance with the average of the last N checkpoints of each model
spread=                     # K > 0: also evaluate each of the last K checkpoints of every trained model alone
                            # (default: 3; tiny preset 1); 0: off
spread_only=""              # e.g. "teacher_nytt student_remix": spread of these systems only ("": all eligible)
test_sets="test_in_domain test_mismatched"
num_eval_utts=0             # 0: every test utterance
num_listen_utts=10          # utterances of the first test set on the listening page
expdir=exp

. "$recipes/utils/parse_options.sh"
. "$recipes/lib.sh"
[ -n "$spread" ] || { [ "$preset" = tiny ] && spread=1 || spread=3; }
[ -n "$dnsmos_utts" ] || { [ "$preset" = tiny ] && dnsmos_utts=1 || dnsmos_utts=30; }
[ -f ./path.sh ] && . ./path.sh
[ -f ./cmd.sh ] && . ./cmd.sh
markers=$expdir/.done
logdir=$expdir/log

log "$0 $* (preset=$preset, stages $stage..$stop_stage)"

# conf_file NAME: conf/NAME_<preset>.yaml of the corpus, else the shared default in recipes/conf/.
conf_file() {
  local f=conf/$1_$preset.yaml
  [ -f "$f" ] || f=$recipes/conf/$1_$preset.yaml
  [ -f "$f" ] || { echo "no config $1_$preset.yaml in conf/ or $recipes/conf/" >&2; return 1; }
  echo "$f"
}

stage_data() {
  local/data.sh --preset "$preset" --nj "$nj" ${db_root:+--db_root "$db_root"} $local_data_opts
  [ "$premixed" = true ] && return 0   # validated by stage 1
  local d s
  for d in $speech_dirs; do
    for s in train dev test; do speechkd data validate "$d/$s"; done
  done
  for d in data/noise/in_domain data/noise/extraneous; do
    speechkd data validate "$d"
  done
}

stage_mix() {
  if [ "$premixed" != true ]; then
    # shellcheck disable=SC2086
    speechkd se-data --speech $speech_dirs --noise data/noise --out data/se $se_data_opts
  fi
  for d in data/se/train_noisy data/se/extra_noise $(for t in $test_sets; do echo data/se/$t data/se/$t/ref; done); do
    speechkd data validate "$d"
  done
}

stage_teacher() {
  speechkd se-train --config "$(conf_file teacher_nytt)" --exp "$expdir/teacher_nytt"
  if [ "$upper_bound" = true ]; then
    speechkd se-train --config "$(conf_file clean_upper)" --exp "$expdir/clean_upper"
  fi
}

stage_estimates() {
  for s in train_noisy dev_noisy; do
    speechkd enhance --model "$expdir/teacher_nytt" --average "$average" --data-dir "data/se/$s" \
      --out-dir "$expdir/teacher_nytt/estimates/$s" --subtype FLOAT --nj "$nj"
  done
}

# trainer_key RESOLVED KEY: a trainer budget (max_steps, max_minutes) or the model of a resolved
# config (the output of speechkd se-train --print-config, read once per config: each call starts torch).
trainer_key() { awk -v k="$2" '$1 == k":" {print $2; exit}' <<< "$1"; }

stage_students() {
  local s conf resolved minutes=0 steps=0 teacher_model
  teacher_model=$(trainer_key "$(speechkd se-train --config "$(conf_file teacher_nytt)" --print-config)" model)
  for s in $students; do
    conf=$(conf_file "$s")
    # the config names the teacher's estimates (and, for the teacher's own architecture, init_from)
    speechkd se-train --config "$conf" --exp "$expdir/$s"
    resolved=$(speechkd se-train --config "$conf" --print-config)
    minutes=$(awk -v a="$minutes" -v b="$(trainer_key "$resolved" max_minutes)" 'BEGIN {print (b > a) ? b : a}')
    # steps count as compute only for the teacher's own network
    if [ "$(trainer_key "$resolved" model)" = "$teacher_model" ]; then
      steps=$(awk -v a="$steps" -v b="$(trainer_key "$resolved" max_steps)" 'BEGIN {print (b > a) ? b : a}')
    fi
  done
  if [ "$control" = true ]; then
    # The fair control: the teacher trained on for as long as the students: the most steps of a
    # student with the teacher's network (a budget independent of the machine's load), else the
    # most minutes of any student; neither leaves the control at the teacher's steps.
    local extra=()
    if awk -v m="$steps" 'BEGIN {exit !(m > 0)}'; then extra=(--extra-steps "$steps")
    elif awk -v m="$minutes" 'BEGIN {exit !(m > 0)}'; then extra=(--extra-minutes "$minutes"); fi
    speechkd se-train --config "$(conf_file teacher_nytt)" --exp "$expdir/teacher_nytt_more" \
      --continue-from "$expdir/teacher_nytt" "${extra[@]}"
  fi
}

# The systems of stages 5-7 (speechkd.enhance.systems): what exp/ holds decides them; stage 5
# lists them into $expdir/systems.tsv and enhances each test set with every one of them (and each
# of the last $spread checkpoints of the trained models alone), stages 6 and 7 read it.
stage_enhance() {
  # shellcheck disable=SC2086
  speechkd enhance --systems "$expdir/systems.tsv" --systems-from "$expdir" --students $students \
    --baselines $baselines --spread "$spread" --spread-only $spread_only --test-sets $test_sets --data-root data/se \
    --average "$average" --nj "$nj" --num-utts "$num_eval_utts"
}

# Each evaluation is skipped when its results.json is newer than the enhanced dir's enhance.json
# (a rerun, e.g. --force true with a larger --spread, redoes only what is new).
stage_eval() {
  # shellcheck disable=SC2086
  speechkd eval se-systems --systems "$expdir/systems.tsv" --test-sets $test_sets --data-root data/se \
    --out "$expdir/eval" --nj "$nj" --num-utts "$num_eval_utts" --paired-against teacher_nytt --dnsmos "$dnsmos" \
    --dnsmos-utts "$dnsmos_utts" \
    --title "$(basename "$(dirname "$PWD")") speech enhancement: objective evaluation"
}

stage_listen() {
  local t=${test_sets%% *}
  speechkd listen manifest --data-dir "data/se/$t" --system "clean=data/se/$t/ref" --system "noisy=data/se/$t" \
    --systems "$expdir/systems.tsv" --reference clean --num-utts "$num_listen_utts" \
    --out "$expdir/listen/manifest.json"
  speechkd listen page --manifest "$expdir/listen/manifest.json" --out "$expdir/listen" \
    --title "$(basename "$(dirname "$PWD")") speech enhancement ($t): listening test"
}

run_stage 0 data stage_data
run_stage 1 mix stage_mix
run_stage 2 teacher stage_teacher
run_stage 3 estimates stage_estimates
run_stage 4 students stage_students
run_stage 5 enhance stage_enhance
run_stage 6 eval stage_eval
run_stage 7 listen stage_listen

log "Done. Results table: $expdir/eval/results.md; listening page: $expdir/listen/index.html"
exit
}
