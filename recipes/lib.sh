#!/usr/bin/env bash
# Shared machinery of the stage scripts (tts.sh, se.sh): logging, the stage
# loop with .done markers, and printing the failing log when a stage breaks.
# Sourced, not run.

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

# run_stage N NAME FUNCTION: runs FUNCTION when stage <= N <= stop_stage, unless
# its marker $markers/N.NAME.done exists (then it says so and skips). The
# stage's output goes to the console and to $logdir/stageN.NAME.log; on failure
# the tail of that log (and of any job log it names) is printed and the script
# exits non-zero, leaving the marker absent so a rerun retries the stage.
run_stage() {
  local n=$1 name=$2 fn=$3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local marker=$markers/$n.$name.done slog=$logdir/stage$n.$name.log
  if [ -f "$marker" ] && [ "$force" != true ]; then
    log "Stage $n ($name): done on $(cat "$marker"); skipping (--force true or rm $marker to redo)"
    return 0
  fi
  mkdir -p "$markers" "$logdir"
  log "Stage $n ($name): started; log: $slog"
  local t0=$SECONDS rc=0
  set +e
  local console=/dev/stdout
  [ "${stage_console:-true}" = true ] || console=/dev/null
  ( set -euo pipefail; "$fn" ) 2>&1 | tee "$slog" > "$console"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    log "Stage $n ($name) FAILED (exit $rc) after $((SECONDS - t0)) s. Last lines of $slog:"
    tail -n 25 "$slog" >&2
    # run.pl names failing job logs: show their ends too.
    local jl
    for jl in $(grep -o 'log is in [^ ]*' "$slog" 2>/dev/null | awk '{print $4}' | sort -u | head -3 || true); do
      if [ -f "$jl" ]; then echo "---- $jl (tail) ----" >&2; tail -n 15 "$jl" >&2; fi
    done
    log "Fix the problem, then rerun: $0 --stage $n --stop_stage $stop_stage"
    exit "$rc"
  fi
  date '+%Y-%m-%dT%H:%M:%S' > "$marker"
  log "Stage $n ($name): finished in $((SECONDS - t0)) s"
}

# run_stages_parallel "N NAME FUNCTION" ...: run_stage for each, side by side (each stage writes
# only to its own log, so that the console does not interleave them); waits for all of them,
# then exits non-zero if any failed. Each stage keeps its own marker: a rerun redoes only the
# ones that failed.
run_stages_parallel() {
  local spec pids=() rc=0 pid
  for spec in "$@"; do
    # shellcheck disable=SC2086
    ( stage_console=false; run_stage $spec ) &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || rc=$?
  done
  [ "$rc" -eq 0 ] || exit "$rc"
}
