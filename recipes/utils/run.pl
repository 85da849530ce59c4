#!/usr/bin/env bash
# Local parallel jobs with Kaldi's run.pl interface:
#   run.pl [--max-jobs-run N] [JOB=1:N] <log-file> <command> [args...]
# Every "JOB" in the log file name and in the command is replaced by the job
# index. The command runs through bash; its stdout and stderr go to the log,
# which starts with the command line and ends with the exit status and time.
# Exits non-zero, naming the failed jobs' logs, if any job fails.
# Each job runs in its own process group (job control on); when run.pl gets TERM, INT or HUP
# it kills every job's group, so a killed parent leaves no workers behind.
set -uo pipefail
set -m

max_jobs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --max-jobs-run) max_jobs=$2; shift 2 ;;
    --max-jobs-run=*) max_jobs=${1#*=}; shift ;;
    --num-threads|--mem|--gpu|--time) shift 2 ;;        # accepted for slurm.pl compatibility
    --config|--config=*) [ "${1#*=}" = "$1" ] && shift 2 || shift ;;
    *) break ;;
  esac
done

if [ $# -lt 2 ]; then
  echo "usage: run.pl [--max-jobs-run N] [JOB=1:N] <log-file> <command> [args...]" >&2
  exit 1
fi

var=""; first=1; last=1
if [[ "$1" =~ ^([A-Za-z_][A-Za-z_0-9]*)=([0-9]+):([0-9]+)$ ]]; then
  var=${BASH_REMATCH[1]}; first=${BASH_REMATCH[2]}; last=${BASH_REMATCH[3]}; shift
elif [[ "$1" =~ ^([A-Za-z_][A-Za-z_0-9]*)=([0-9]+)$ ]]; then
  var=${BASH_REMATCH[1]}; first=${BASH_REMATCH[2]}; last=$first; shift
fi
log_tmpl=$1; shift

# Quote the command words so that they survive the bash -c below.
cmd=""
for w in "$@"; do cmd+="$(printf '%q' "$w") "; done
[ $# -eq 1 ] && cmd=$1   # a single word is taken as a shell command line, as in Kaldi

run_one() {
  local i=$1 log c
  log=$log_tmpl; c=$cmd
  if [ -n "$var" ]; then log=${log//$var/$i}; c=${c//$var/$i}; fi
  mkdir -p "$(dirname "$log")"
  {
    echo "# $c"
    echo "# Started at $(date)"
  } > "$log"
  local t0=$SECONDS
  ( bash -c "$c" ) >> "$log" 2>&1
  local rc=$?
  echo "# Accounting: time=$((SECONDS - t0)) threads=1" >> "$log"
  echo "# Ended (code $rc) at $(date)" >> "$log"
  return $rc
}

pids=(); jobs_of=(); failed=()
kill_jobs() {
  local sig=$1 p
  trap - TERM INT HUP
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
  echo "run.pl: got SIG$sig, killed ${#pids[@]} job(s)" >&2
  case $sig in INT) exit 130 ;; HUP) exit 129 ;; *) exit 143 ;; esac
}
trap 'kill_jobs TERM' TERM
trap 'kill_jobs INT' INT
trap 'kill_jobs HUP' HUP
for ((i = first; i <= last; i++)); do
  if [ "$max_jobs" -gt 0 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$max_jobs" ]; do wait -n || true; done
  fi
  run_one "$i" &
  pids+=($!); jobs_of+=("$i")
done
for k in "${!pids[@]}"; do
  if ! wait "${pids[$k]}"; then failed+=("${jobs_of[$k]}"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
  for i in "${failed[@]}"; do
    log=$log_tmpl; [ -n "$var" ] && log=${log//$var/$i}
    echo "run.pl: job $i failed, log is in $log" >&2
  done
  echo "run.pl: ${#failed[@]} / $((last - first + 1)) jobs failed" >&2
  exit 1
fi
exit 0
