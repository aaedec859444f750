#!/usr/bin/env bash
# ThreadSanitizer over the code that runs on real threads: the core's notifier lock under
# contention, and the simulator's concurrent scenarios (simulated threads are OS threads handing
# a baton through a mutex and condvar). Nightly only; bounded by GPUSVM_SEEDS.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || true
export RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
target=x86_64-unknown-linux-gnu
cargo +nightly test -Zbuild-std --target "$target" --target-dir target/tsan -j2 \
    -p gpusvm-core --lib lock
GPUSVM_SEEDS="${GPUSVM_SEEDS:-3}" cargo +nightly test -Zbuild-std --target "$target" \
    --target-dir target/tsan -j2 -p gpusvm-tests --test concurrency
