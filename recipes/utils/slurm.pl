#!/usr/bin/env bash
# Slurm jobs with Kaldi's run.pl interface:
#   slurm.pl [--num-threads N] [--mem 4G] [--gpu N] [--time 4:00:00] [--max-jobs-run N] JOB=1:N <log> <cmd...>
# Submits one sbatch array job, waits for it (sbatch --wait), and exits
# non-zero naming the logs of failed tasks. Extra sbatch options may be put in
# $SLURM_EXTRA_OPTS (e.g. "--partition=gpu --account=abc").
set -uo pipefail

threads=1; mem=""; gpu=0; time_limit=""; max_jobs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --num-threads) threads=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --gpu) gpu=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --max-jobs-run) max_jobs=$2; shift 2 ;;
    *) break ;;
  esac
done
command -v sbatch >/dev/null || { echo "slurm.pl: sbatch not found; use run.pl on a single machine" >&2; exit 1; }

var=""; first=1; last=1
if [[ "$1" =~ ^([A-Za-z_][A-Za-z_0-9]*)=([0-9]+):([0-9]+)$ ]]; then
  var=${BASH_REMATCH[1]}; first=${BASH_REMATCH[2]}; last=${BASH_REMATCH[3]}; shift
fi
log_tmpl=$1; shift
cmd=""; for w in "$@"; do cmd+="$(printf '%q' "$w") "; done
[ $# -eq 1 ] && cmd=$1

dir=$(dirname "$log_tmpl")/q; mkdir -p "$dir"
script=$dir/$(basename "${log_tmpl//$var/}" .log).sh
{
  echo "#!/usr/bin/env bash"
  echo "cd $(printf '%q' "$PWD")"
  echo "i=\${SLURM_ARRAY_TASK_ID:-$first}"
  echo "log=$(printf '%q' "$log_tmpl"); [ -n \"$var\" ] && log=\${log//$var/\$i}"
  echo "c=$(printf '%q' "$cmd"); [ -n \"$var\" ] && c=\${c//$var/\$i}"
  echo 'mkdir -p "$(dirname "$log")"; { echo "# $c"; echo "# Started at $(date) on $(hostname)"; } > "$log"'
  echo 'bash -c "$c" >> "$log" 2>&1; rc=$?'
  echo 'echo "# Ended (code $rc) at $(date)" >> "$log"; exit $rc'
} > "$script"
opts=(--wait --job-name "$(basename "$script" .sh)" --cpus-per-task "$threads" --output "$dir/slurm-%A_%a.out")
[ -n "$mem" ] && opts+=(--mem "$mem")
[ "$gpu" -gt 0 ] && opts+=(--gres "gpu:$gpu")
[ -n "$time_limit" ] && opts+=(--time "$time_limit")
array="$first-$last"; [ "$max_jobs" -gt 0 ] && array+="%$max_jobs"
# shellcheck disable=SC2086
sbatch "${opts[@]}" ${SLURM_EXTRA_OPTS:-} --array "$array" "$script" >/dev/null
rc=$?
if [ $rc -ne 0 ]; then
  for ((i = first; i <= last; i++)); do
    log=$log_tmpl; [ -n "$var" ] && log=${log//$var/$i}
    grep -q "Ended (code 0)" "$log" 2>/dev/null || echo "slurm.pl: task $i failed, log is in $log" >&2
  done
  exit 1
fi
exit 0
