#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time: nightly Rust, libFuzzer, AddressSanitizer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 seconds, every target)
#
# Installs cargo-fuzz with `cargo install` (into ~/.cargo/bin, outside the repository) if it is
# missing. Each target starts from its committed seed corpus (fuzz/corpus/<target>/, read only);
# the inputs it discovers go to a scratch corpus under fuzz/target/fuzz-corpus/<target>/ (ignored
# by git; kept between local runs), crashes to fuzz/artifacts/<target>/. Prints the executions
# run per target and exits non-zero if any target crashed, timed out, ran out of memory or did
# not run.
#
# Environment: FUZZ_RSS_LIMIT_MB (default 2048), FUZZ_TIMEOUT (seconds per input, default 60),
# CARGO_FUZZ_VERSION (default 0.13.2), CARGO_BUILD_JOBS (default 2).
#
# A crash of unmap_sequences prints the operations as a runnable .svm scenario; replay a crash
# file with `cargo +nightly fuzz run <target> <file>` (in fuzz/) or on stable with
# `FUZZ_INPUT=<file> cargo test -p gpusvm-tests --test fuzz_corpus -- --ignored --nocapture`.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(unmap_sequences scenario_parser chunk_select)
fi
rss=${FUZZ_RSS_LIMIT_MB:-2048}
per_input=${FUZZ_TIMEOUT:-60}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    version=${CARGO_FUZZ_VERSION:-0.13.2}
    echo "fuzz.sh: installing cargo-fuzz $version"
    t0=$(date +%s)
    cargo install cargo-fuzz --locked --version "$version"
    echo "fuzz.sh: cargo-fuzz installed in $(($(date +%s) - t0)) s"
fi

echo "fuzz.sh: building ${targets[*]} (nightly, ASan)"
t0=$(date +%s)
for t in "${targets[@]}"; do
    cargo +nightly fuzz build "$t"
done
echo "fuzz.sh: built in $(($(date +%s) - t0)) s"

logdir=target/fuzz-logs
mkdir -p "$logdir"
failed=0
summary=()
for t in "${targets[@]}"; do
    work=target/fuzz-corpus/$t
    mkdir -p "$work" "artifacts/$t"
    log=$logdir/$t.log
    echo "fuzz.sh: $t for ${secs} s"
    rc=0
    # The outer timeout only guards against a fuzzer that does not stop by itself.
    timeout --kill-after=30 $((secs * 2 + 300)) \
        cargo +nightly fuzz run "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb="$rss" -timeout="$per_input" \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [ -z "$execs" ]; then
        execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
    fi
    rate=$(sed -n 's/^#[0-9]*[[:space:]]*DONE.* exec\/s: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    corpus=$(find "$work" -type f | wc -l)
    # libFuzzer keeps inputs slower than -report_slow_units (10 s) as slow-unit-* artifacts: not
    # a failure (the machine may be loaded), but worth a look.
    slow=$(grep -c 'Test unit written to .*slow-unit-' "$log" || true)
    if [ "$rc" -eq 0 ] && grep -q 'DONE' "$log"; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed=1
        echo "fuzz.sh: $t failed; end of $log:" >&2
        grep -v '^\(INFO\|#[0-9]\)' "$log" | tail -n 60 >&2
        ls -1 "artifacts/$t" >&2 2>/dev/null || true
    fi
    if [ "${slow:-0}" -gt 0 ]; then
        result="$result ($slow slow inputs kept in fuzz/artifacts/$t/)"
    fi
    summary+=("$(printf '%-16s %12s executions %8s exec/s %7s corpus  %s' \
        "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$result")")
done

echo
echo "fuzz.sh: ${secs} s per target (logs in fuzz/$logdir/)"
for line in "${summary[@]}"; do
    echo "  $line"
done
exit $failed
