#!/usr/bin/env bash
# The TTS recipe template shared by every corpus (egs/<corpus>/tts1/run.sh sets
# the variables below and calls this script). Each stage is one `speechkd`
# call per split; logic lives in the library. Stages:
#   0  corpus preparation (local/data.sh) -> data/{train,dev,test}, validated
#   1  text frontend -> data/token_list/<kind>/tokens.txt, dump/tokens/<split>
#   2  features (mel, F0, energy; --nj parallel through $train_cmd) -> dump/feats/<split>
#   3  autoregressive Transformer-TTS teacher -> exp/teacher_ar (resumes after a kill)
#   4  teacher dump (--kd_mode teacher_forced|free_running|both): durations, focus rates,
#      free-running mels -> dump/teacher/<split>/<kd_mode>, report.md per split and mode; stops when
#      fewer than --min_aligned of the training utterances reach the focus threshold (the teacher
#      did not align: train it longer, ./run.sh --stage 3 --force true --teacher_opts trainer.max_minutes=N)
#   5  FastSpeech student (sequence-level KD: --fastspeech_kd_mode free_running) -> exp/fastspeech
#   6  FastSpeech 2 student (ground-truth mels, teacher-forced durations) -> exp/fastspeech2
#      (both read dump/teacher/<split>/<kd_mode> of stage 4, which dumps the train and dev sets)
#   7  diffusion teacher (ProDiff-style, N = $diffusion_steps DDIM steps) -> exp/diffusion_<N>
#   8  progressive distillation N -> N/2 -> ... (rounds in conf/progressive_<preset>.yaml)
#      -> exp/diffusion_<k>; stages 7-8 are left out of the demo preset's full run (they add
#      ~25 CPU minutes): ./run.sh --stage 7 --stop_stage 8 runs them (see $diffusion)
#   9  neural vocoder (Vocos-like, conf/vocoder_vocos_<preset>.yaml) -> exp/vocoder_vocos; left out
#      of the demo preset's full run (~20 CPU minutes): ./run.sh --stage 9 --stop_stage 9 (see $vocoder)
#      With --vocoder_teacher (off by default), vocoder distillation too: the teacher vocoder's
#      waveforms for the training and dev mels, ground truth or an acoustic model's predicted ones
#      (--vocoder_kd_mels), then each of $vocoder_students trained on them
#      (conf/vocoder_<s>_kd_<preset>.yaml) -> exp/vocoder_<s>_kd[_<model>], a vocoder of stages 10-12
#   10 synthesis of the test set by every system: copy synthesis of ground-truth mels by
#      Griffin-Lim and by each trained vocoder exp/vocoder_<v> (-> exp/resynth_<v>), WORLD
#      resynthesis of the test audio (exp/resynth_world), and `speechkd synth` of
#      data/<test>/text by every trained acoustic model (with each trained neural vocoder too),
#      and by the diffusion teacher with each student's step count k (exp/diffusion_<N>_steps<k>);
#      the systems are listed in exp/systems.tsv (rules and pairs: speechkd/infer/systems.py)
#   11 objective evaluation of every system of exp/systems.tsv -> exp/eval/results.{json,md}, with
#      paired differences: each model against the ground-truth mels through the same vocoder, and
#      each k-step student against the teacher sampled with k steps; per-speaker tables, and with
#      several voices in the test set `speechkd eval speakers` of $speaker_eval_models ->
#      exp/eval/speakers_<model> (does each voice asked for sound like that speaker?), and against the
#      recordings' own mels through the same vocoder -> exp/eval/speakers_<model>/results_vocoded.md
#   12 listening-test site -> exp/listen/index.html
# The whole script is one { ... } block: bash reads all of it before running any of it, so
# editing the recipe while a run is going cannot derail that run.
{
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
frontend_config=""      # text frontend YAML of stage 1 (speechkd text --print-config); "" = built-in
feats_config=conf/feats.yaml
local_data_opts=""      # passed to local/data.sh
db_root=""              # published corpora: where the corpus is (passed to local/data.sh; default in its db.sh)
teacher_config=""       # AR teacher YAML; default conf/teacher_ar_<preset>.yaml, else recipes/conf/
teacher_opts=""         # extra `speechkd train` arguments, e.g. "--devices 2 --strategy ddp"
kd_mode=both            # teacher dump: teacher_forced | free_running | both
min_aligned=auto        # stage 4 stops unless this share of training utterances reaches the focus threshold
                        # (a teacher that did not align): auto = 0.9, but 0 with --preset tiny, whose
                        # few-step teacher is not meant to align (the recipe tests run the stages, not the claim)
fastspeech_kd_mode=free_running    # stage 5 targets: free_running (the paper) | teacher_forced
fastspeech2_kd_mode=teacher_forced # stage 6 targets (token pitch/energy need teacher_forced)
student_opts=""         # extra `speechkd train` arguments of stages 5-6, e.g. "--max-minutes 10"
parallel_students=auto  # stages 5 and 6 side by side, nj/2 torch threads each (on 2 cores they train
                        # more steps together than one after the other): auto = when nj >= 2
                        # and both stages are due; true | false
diffusion=auto          # stages 7-8: auto = with --preset tiny|quality, or when --stage is 7 or 8; true | false
diffusion_steps=8       # N of the diffusion teacher (exp/diffusion_<N>); stage 8 halves it
diffusion_opts=""       # extra `speechkd train` arguments of stage 7 (e.g. "--devices 2")
progressive_opts=""     # extra `speechkd distill progressive` arguments of stage 8 (e.g. "--rounds 3")
vocoder=auto            # stage 9: auto = with --preset tiny|quality, or when --stage is 9; true | false
vocoder_config=""       # neural vocoder YAML; default conf/vocoder_vocos_<preset>.yaml, else recipes/conf/
vocoder_opts=""         # extra `speechkd train-vocoder` arguments (e.g. "trainer.max_minutes=40")
vocoder_teacher=""      # stage 9 vocoder distillation from this teacher vocoder ("" = off): hifigan_universal |
                        # hifigan_ljspeech (22.05 kHz features of conf/feats_22k.yaml) | a trained vocoder's exp dir
vocoder_students="vocos hifigan"  # students distilled from $vocoder_teacher: conf/vocoder_<s>_kd_<preset>.yaml
vocoder_kd_mels=""      # their input mels: "" = ground truth ($dumpdir/feats); or a trained acoustic model of exp/
                        # (e.g. fastspeech2) whose teacher-forced mels (speechkd predict-mels -> dump/pred_<model>)
                        # the teacher vocodes: exp/vocoder_<s>_kd_<model>
num_eval_utts=50        # test utterances synthesized and evaluated
mcd=world               # stage 11 MCD definition: world (speechkd's) | espnet (ESPnet2's evaluate_mcd.py,
                        # comparable with ESPnet's tables; needs bash tools/install_espnet.sh)
num_listen_utts=10      # test utterances on the listening page
speaker_eval_models="teacher_ar fastspeech2"  # stage 11, multi-speaker test sets: `speechkd eval speakers`
                        # (every test sentence in every voice, speaker x speaker tables) of these exp/<model>
speaker_eval_utts=8     # test utterances per speaker in those tables
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
  local/data.sh --preset "$preset" --nj "$nj" ${db_root:+--db_root "$db_root"} $local_data_opts
  for s in "$train_set" "$dev_set" "$test_set"; do
    speechkd data validate "data/$s"
  done
}

stage_text() {
  local tl=data/token_list/$token_kind/tokens.txt conf=()
  [ -z "$frontend_config" ] || conf=(--config "$frontend_config")
  speechkd text --data-dir "data/$train_set" "${conf[@]}" --kind "$token_kind" \
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

# conf_file NAME: conf/NAME_<preset>.yaml of the corpus, else the shared default in recipes/conf/.
conf_file() {
  local f=conf/$1_$preset.yaml
  [ -f "$f" ] || f=$recipes/conf/$1_$preset.yaml
  [ -f "$f" ] || { echo "no config $1_$preset.yaml in conf/ or $recipes/conf/" >&2; return 1; }
  echo "$f"
}

stage_teacher_ar() {
  local conf
  conf=${teacher_config:-$(conf_file teacher_ar)}
  # shellcheck disable=SC2086
  speechkd train --config "$conf" --data "$dumpdir" \
    --token-list "data/token_list/$token_kind/tokens.txt" --exp "$expdir/teacher_ar" \
    data.train_set="$train_set" data.dev_set="$dev_set" $teacher_opts
}

stage_teacher_dump() {
  local floor=$min_aligned
  if [ "$floor" = auto ]; then
    if [ "$preset" = tiny ]; then floor=0; else floor=0.9; fi
  fi
  # The training set first: its alignment floor stops the recipe before students train on a broken teacher.
  speechkd teacher-dump --exp "$expdir/teacher_ar" --data "$dumpdir" --split "$train_set" \
    --out "$dumpdir/teacher/$train_set" --kd-mode "$kd_mode" --min-aligned "$floor"
  speechkd teacher-dump --exp "$expdir/teacher_ar" --data "$dumpdir" --split "$dev_set" \
    --out "$dumpdir/teacher/$dev_set" --kd-mode "$kd_mode"
}

# stage_student NAME KD_MODE: one `speechkd train` of a student on the stage-4 teacher dump
# ($student_threads torch threads when set: the students share the cores).
stage_student() {
  local threads=()
  [ -z "${student_threads:-}" ] || threads=(trainer.num_threads="$student_threads")
  # shellcheck disable=SC2086
  speechkd train --config "$(conf_file "$1")" --data "$dumpdir" \
    --token-list "data/token_list/$token_kind/tokens.txt" --exp "$expdir/$1" \
    --kd-mode "$2" --teacher-dump "$dumpdir/teacher" \
    data.train_set="$train_set" data.dev_set="$dev_set" "${threads[@]}" $student_opts
}
stage_fastspeech() { stage_student fastspeech "$fastspeech_kd_mode"; }
stage_fastspeech2() { stage_student fastspeech2 "$fastspeech2_kd_mode"; }

# Stages 5 and 6 side by side (see $parallel_students): both due, none of them done.
students_side_by_side() {
  case $parallel_students in
    true) return 0 ;;
    false) return 1 ;;
  esac
  [ "$nj" -ge 2 ] && [ "$stage" -le 5 ] && [ "$stop_stage" -ge 6 ] || return 1
  [ "$force" = true ] || { [ ! -f "$markers/5.fastspeech.done" ] && [ ! -f "$markers/6.fastspeech2.done" ]; }
}

# Stages 7-8 run unless the demo preset's full run would pay for them (see $diffusion).
want_diffusion() {
  case $diffusion in
    true) return 0 ;;
    false) return 1 ;;
  esac
  [ "$preset" != demo ] || [ "$stage" -ge 7 ]
}

stage_diffusion() {
  local conf
  conf=$(conf_file diffusion)
  # shellcheck disable=SC2086
  speechkd train --config "$conf" --data "$dumpdir" --token-list "data/token_list/$token_kind/tokens.txt" \
    --exp "$expdir/diffusion_$diffusion_steps" --kd-mode teacher_forced --teacher-dump "$dumpdir/teacher" \
    model_conf.steps="$diffusion_steps" data.train_set="$train_set" data.dev_set="$dev_set" $diffusion_opts
}

stage_progressive() {
  # shellcheck disable=SC2086
  speechkd distill progressive --teacher "$expdir/diffusion_$diffusion_steps" \
    --config "$(conf_file progressive)" $progressive_opts
}

# Stage 9 runs unless the demo preset's full run would pay for it (see $vocoder).
want_vocoder() {
  case $vocoder in
    true) return 0 ;;
    false) return 1 ;;
  esac
  [ "$preset" != demo ] || [ "$stage" -ge 9 ]
}

stage_vocoder() {
  # shellcheck disable=SC2086
  speechkd train-vocoder --config "${vocoder_config:-$(conf_file vocoder_vocos)}" --feats "$dumpdir/feats" \
    --data data --exp "$expdir/vocoder_vocos" data.train_set="$train_set" data.dev_set="$dev_set" $vocoder_opts
}

# Vocoder distillation (stage 9 with --vocoder_teacher): the teacher runs once over the training and
# dev mels; each student then learns the teacher's waveforms for those mels.
stage_vocoder_kd() {
  local feats=$dumpdir/feats tag="" teacher s
  if [ -n "$vocoder_kd_mels" ]; then  # the acoustic model's teacher-forced mels of each split
    feats=$dumpdir/pred_$vocoder_kd_mels tag=_$vocoder_kd_mels
    for s in "$train_set" "$dev_set"; do
      speechkd predict-mels --model "$expdir/$vocoder_kd_mels" --split "$s" --out "$feats/$s"
    done
  fi
  teacher=$dumpdir/vocoder_teacher/$(basename "$vocoder_teacher")_$(basename "$feats")
  for s in "$train_set" "$dev_set"; do
    speechkd vocode --feats "$feats/$s" --vocoder "$vocoder_teacher" --out "$teacher/$s"
  done
  for s in $vocoder_students; do
    # shellcheck disable=SC2086
    speechkd train-vocoder --config "$(conf_file "vocoder_${s}_kd")" --feats "$feats" --teacher-audio "$teacher" \
      --exp "$expdir/vocoder_${s}_kd$tag" data.train_set="$train_set" data.dev_set="$dev_set" $vocoder_opts
  done
}

# The systems of stages 10-12 (speechkd.infer.systems): what exp/ holds decides them; stage 10
# lists them into $expdir/systems.tsv, stages 11 and 12 read it.
stage_synthesis() {
  speechkd synth --systems "$expdir/systems.tsv" --systems-from "$expdir" --diffusion-steps "$diffusion_steps" \
    --data-dir "data/$test_set" --feats "$dumpdir/feats/$test_set" --num-utts "$num_eval_utts" --nj "$nj" \
    --on-unknown map
}

stage_eval() {
  speechkd eval systems --systems "$expdir/systems.tsv" --data-dir "data/$test_set" --num-utts "$num_eval_utts" \
    --nj "$nj" --out "$expdir/eval" --title "$(basename "$(dirname "$PWD")") test set: objective evaluation" \
    --mcd "$mcd" --durations "$dumpdir/teacher/$train_set/teacher_forced" "data/$train_set" --compare-split "$dev_set"
  # several voices in the test set: does each model speak the voice it is asked for?
  if [ "$(cut -d' ' -f2 "data/$test_set/utt2spk" | sort -u | wc -l)" -gt 1 ]; then
    local m
    for m in $speaker_eval_models; do
      [ -d "$expdir/$m" ] || continue
      # --overwrite: a retrained model's wavs replace the earlier ones (kept in wav/.backup/<n>/), as
      # stage 10 re-synthesizes; the same checkpoint reuses them
      speechkd eval speakers --model "$expdir/$m" --data-dir "data/$test_set" --per-speaker "$speaker_eval_utts" \
        --nj "$nj" --out "$expdir/eval/speakers_$m" --overwrite
      # the same wavs against the recordings' own mels through the same vocoder (its error on both sides)
      speechkd eval speakers --model "$expdir/$m" --data-dir "data/$test_set" --per-speaker "$speaker_eval_utts" \
        --nj "$nj" --out "$expdir/eval/speakers_$m" --reference-feats "$dumpdir/feats/$test_set"
    done
  fi
}

stage_listen() {
  speechkd listen manifest --data-dir "data/$test_set" --system "ground_truth=data/$test_set" \
    --systems "$expdir/systems.tsv" --reference ground_truth --num-utts "$num_listen_utts" \
    --out "$expdir/listen/manifest.json"
  speechkd listen page --manifest "$expdir/listen/manifest.json" --out "$expdir/listen" \
    --title "$(basename "$(dirname "$PWD")"): listening test"
}

run_stage 0 data stage_data
run_stage 1 text stage_text
run_stage 2 features stage_features
run_stage 3 teacher_ar stage_teacher_ar
run_stage 4 teacher_dump stage_teacher_dump
if students_side_by_side; then
  student_threads=$(( nj > 1 ? nj / 2 : 1 ))
  run_stages_parallel "5 fastspeech stage_fastspeech" "6 fastspeech2 stage_fastspeech2"
  unset student_threads
else
  run_stage 5 fastspeech stage_fastspeech
  run_stage 6 fastspeech2 stage_fastspeech2
fi
if want_diffusion; then
  run_stage 7 diffusion stage_diffusion
  run_stage 8 progressive stage_progressive
elif [ "$stage" -le 8 ] && [ "$stop_stage" -ge 7 ]; then
  log "Stages 7-8 (diffusion teacher, progressive distillation) are not part of the demo preset's full run" \
    "(~25 CPU minutes more): ./run.sh --stage 7 --stop_stage 8"
fi
if want_vocoder; then
  run_stage 9 vocoder stage_vocoder
elif [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  log "Stage 9 (neural vocoder training) is not part of the demo preset's full run (~20 CPU minutes):" \
    "./run.sh --stage 9 --stop_stage 9"
fi
[ -z "$vocoder_teacher" ] || run_stage 9 "vocoder_kd${vocoder_kd_mels:+_$vocoder_kd_mels}" stage_vocoder_kd
run_stage 10 synthesis stage_synthesis
run_stage 11 eval stage_eval
run_stage 12 listen stage_listen

log "Done. Results table: $expdir/eval/results.md; listening page: $expdir/listen/index.html"
exit
}
