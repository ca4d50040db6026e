# Sourced by the scripts: how long each step of a run took. `timed NAME CMD...` runs CMD and appends its
# duration to one file for the whole run ($TIMINGS_FILE, shared with the scripts this one starts); the
# outermost script starts the file and prints the table when it exits, also after a failure.

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record_timing() {  # NAME SECONDS
    printf '%-62s %7ss\n' "$1" "$2" >>"$TIMINGS_FILE"
}
timed() {  # NAME CMD... — runs CMD (a command or a shell function), records its duration under NAME
    local name=$1 t0
    shift
    t0=$(now)
    "$@"
    record_timing "$name" "$(elapsed "$t0")"
}
print_timings() {
    [ -s "$TIMINGS_FILE" ] || return 0
    printf '\n==> step timings (%s)\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    sed 's/^/    /' "$TIMINGS_FILE"
}
if [ -z "${TIMINGS_FILE:-}" ]; then
    TIMINGS_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/timings.log"
    export TIMINGS_FILE
    mkdir -p "$(dirname "$TIMINGS_FILE")"
    : >"$TIMINGS_FILE"
    TIMINGS_STARTED=$(now)
    TIMINGS_OWNER=1
fi
timings_total() {  # for the outermost script, at exit: the whole run
    [ "${TIMINGS_OWNER:-0}" = 1 ] || return 0
    record_timing "total" "$(elapsed "$TIMINGS_STARTED")"
    print_timings
}
