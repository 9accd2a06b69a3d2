# Progress for long builds, sourced by hack/build-kube-binaries.sh and hack/with-progress.sh:
# `step WHAT CMD...` says what it builds, a line every $PROGRESS_EVERY seconds (20) while CMD
# runs, and when it is done; the lines go to stderr with the prefix $PROGRESS_PREFIX.
PROGRESS_EVERY=${PROGRESS_EVERY:-20}
PROGRESS_PREFIX=${PROGRESS_PREFIX:-build}

# now: milliseconds since the epoch.
now() { local t=${EPOCHREALTIME:-}; if [[ -n $t ]]; then echo $((10#${t//[!0-9]/} / 1000)); else date +%s%3N; fi; }
start=$(now)
heartbeat=
work=
# The heartbeat of a step still running is stopped however the script ends.
cleanup() {
  if [[ -n $heartbeat ]]; then
    kill "$heartbeat" 2>/dev/null || true
    wait "$heartbeat" 2>/dev/null || true
  fi
  if [[ -n $work ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT

say() { echo "$PROGRESS_PREFIX: $*" >&2; }
# dur VAR MILLISECONDS sets VAR to e.g. 42s or 7m05s.
dur() {
  set -- "$1" $((($2 + 500) / 1000))
  if (($2 >= 60)); then printf -v "$1" '%dm%02ds' $(($2 / 60)) $(($2 % 60)); else printf -v "$1" '%ds' "$2"; fi
}

# step WHAT CMD...: runs CMD (its output as it is) and says WHAT when it starts, every
# $PROGRESS_EVERY seconds while it runs (with the time taken) and when it is done. Returns CMD's
# exit status.
step() {
  local what=$1 t0 rc=0 d
  shift
  t0=$(now)
  say "$what"
  # Ends when it is killed (its sleep with it), or by itself once this script is gone. Each line
  # is due n periods after the start, so one that comes late does not delay the next ones.
  (
    trap 'kill $s 2>/dev/null; exit 0' TERM
    s= n=0
    while :; do
      n=$((n + 1))
      ms=$((t0 + n * PROGRESS_EVERY * 1000 - $(now)))
      ((ms > 0)) || ms=0
      printf -v wait_s '%d.%03d' $((ms / 1000)) $((ms % 1000))
      sleep "$wait_s" </dev/null >/dev/null 2>&1 &
      s=$!
      wait $s
      kill -0 $$ 2>/dev/null || exit 0
      t=$(now)
      dur a $((t - t0))
      dur b $((t - start))
      say "$what … $a (total $b)"
    done
  ) </dev/null >/dev/null 2>&2 &
  heartbeat=$!
  "$@" || rc=$?
  kill "$heartbeat" 2>/dev/null || true
  wait "$heartbeat" 2>/dev/null || true
  heartbeat=
  if ((rc == 0)); then
    dur d $(($(now) - t0))
    say "$what: done in $d"
  fi
  return $rc
}

