#!/usr/bin/env bash
# Upstream's drm_gpusvm.c and ours side by side in one boot (issue 12, docs/KERNEL.md §5).
#
#   run-qemu.sh BUILD_DIR UPSTREAM_HELPER_KO RUST_HELPER_KO OUTDIR
#
# BUILD_DIR  a finished kernel build (O= directory; its bzImage is booted and gpusvm_vgpu.ko is
#            built against it)
# *_KO       the two drm_gpusvm_helper.ko to compare, built for that kernel
# OUTDIR     outputs: {upstream,rust}.diff.txt and .bench.txt (the guest programs' lines),
#            serial.log, summary.txt (what this script prints)
#
# Builds the virtual GPU gpusvm_vgpu.ko (kernel-shim/diff/gpusvm_vgpu.c, upstream's API only),
# the suite (kernel-shim/test/dmirror_test.c, run with -d /dev/gpusvm_vgpu -D) and the
# benchmarks (kernel-shim/test/vgpu_bench.c), boots the kernel once and, for each helper in
# turn: inserts it, re-loads xe.ko against it (if MODULES_ROOT is given), inserts
# gpusvm_vgpu.ko, runs the suite and the benchmarks, and unloads everything; then runs the
# benchmarks once more over each, in the reverse order, so that neither implementation always
# runs after the other (each measurement is the best of its two rounds).
#
# Then it compares, per case of the suite, the two outcomes and residency traces:
#   GPUSVM-DIFF: <case> upstream=<ok|not ok> rust=<ok|not ok> <verdict>
# Ours must pass every case. Upstream must pass every case too, except the ones listed in
# expected-differences.txt (an upstream bug the case reproduces, docs/upstream-bugs.md), which
# must fail there, with the reason given. Where both pass, the residency traces must be equal.
#   GPUSVM-DIFF: DONE failed=N
# and, per benchmark, the ratio of the two in-kernel times:
#   GPUSVM-BENCH: <name> upstream=<ns/op> rust=<ns/op> rust/upstream=<ratio>
#
# Exits non-zero on a build, boot or guest failure, a kernel log with BUG/WARNING/Oops, or any
# failed GPUSVM-DIFF line.
#
# Environment:
#   KSRC           kernel source tree (default: from BUILD_DIR/Makefile)
#   MODULES_ROOT   a directory with lib/modules/<release> (modules_install of BUILD_DIR) for
#                  the guest's "modprobe xe" against each helper; without it xe is not loaded
#   BENCH_ARGS     arguments of vgpu_bench (e.g. -q: no million-range case)
#   DIFF_ONLY      run only this suite case (debugging)
#   DIFF_ORDER     the phases in order (default "upstream rust")
#   DIFF_REPEAT    run the suite (or DIFF_ONLY's case) this many more times per helper,
#                  reporting failures as INFO lines (hunting a flaky case)
#   QEMU_TIMEOUT   seconds (default 1200)
#   JOBS, RUSTC, HOSTRUSTC, BINDGEN, LIBCLANG_PATH  as kernel-shim/abi-test/run-qemu.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SHIM=$(cd "$HERE/.." && pwd)
START=$SECONDS
log() { printf '[diff +%3ss] %s\n' $((SECONDS - START)) "$*" >&2; }
die() { printf '[diff] error: %s\n' "$*" >&2; exit 1; }

[ $# -eq 4 ] || die "usage: $0 BUILD_DIR UPSTREAM_HELPER_KO RUST_HELPER_KO OUTDIR"
BUILD=$(cd "$1" && pwd)
UP_KO=$(readlink -f "$2")
RS_KO=$(readlink -f "$3")
OUT=$4
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -f "$BUILD/arch/x86/boot/bzImage" ] || die "$BUILD/arch/x86/boot/bzImage missing"
if [ -z "${KSRC:-}" ]; then
	KSRC=$(sed -n 's/^include \(.*\)\/Makefile$/\1/p' "$BUILD/Makefile" 2>/dev/null | head -n1)
	[ -n "$KSRC" ] || KSRC=$BUILD
fi
[ -f "$KSRC/Makefile" ] || die "kernel source $KSRC not found (set KSRC)"
QEMU_TIMEOUT=${QEMU_TIMEOUT:-1200}
JOBS=${JOBS:-2}
RUSTC=${RUSTC:-/usr/bin/rustc}
HOSTRUSTC=${HOSTRUSTC:-/usr/bin/rustc}
BINDGEN=${BINDGEN:-/var/cache/gpusvm-kernel/bindgen-0.71.1/bin/bindgen}
LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
kver=$(cat "$BUILD/include/config/kernel.release")
for ko in "$UP_KO" "$RS_KO"; do
	[ -f "$ko" ] || die "$ko missing"
	[ "$(modinfo -F name "$ko")" = drm_gpusvm_helper ] || die "$ko is not drm_gpusvm_helper"
	[ "$(modinfo -F vermagic "$ko" | awk '{print $1}')" = "$kver" ] || die "$ko is not for $kver"
	[ -z "$(modinfo -F depends "$ko")" ] || die "$ko has dependencies: $(modinfo -F depends "$ko")"
done
# Which one is ours: only ours has the read-only parameter naming itself.
modinfo -F parm "$RS_KO" | grep -q '^impl:' || die "$RS_KO is not the Rust implementation"
! modinfo -F parm "$UP_KO" | grep -q '^impl:' || die "$UP_KO is not upstream's"

# ------------------------------------------------------------------------- build
WORK=$OUT/work
rm -rf "$WORK"
mkdir -p "$WORK/mod/include"
log "building gpusvm_vgpu.ko against $BUILD"
cp "$HERE/gpusvm_vgpu.c" "$HERE/Kbuild" "$WORK/mod/"
cp "$SHIM/include/gpusvm_dmirror.h" "$SHIM/include/gpusvm_vgpu.h" "$WORK/mod/include/"
if ! make -C "$KSRC" O="$BUILD" RUSTC="$RUSTC" HOSTRUSTC="$HOSTRUSTC" BINDGEN="$BINDGEN" \
	LIBCLANG_PATH="$LIBCLANG_PATH" M="$WORK/mod" -j"$JOBS" modules > "$WORK/build.log" 2>&1; then
	cat "$WORK/build.log" >&2
	die "module build failed"
fi
if grep -iE '^(warning|error)|: (warning|error):' "$WORK/build.log" >&2; then
	die "module build has warnings"
fi
log "building dmirror_test and vgpu_bench (static)"
for prog in dmirror_test vgpu_bench; do
	gcc -static -O2 -Wall -Wextra -Werror -I"$SHIM/include" -o "$WORK/$prog" \
		"$SHIM/test/$prog.c" -lpthread > "$WORK/gcc.log" 2>&1 ||
		{ cat "$WORK/gcc.log" >&2; die "$prog build failed"; }
done

# ------------------------------------------------------------------------- initramfs
log "assembling the initramfs"
RFS=$WORK/rootfs
mkdir -p "$RFS"/{bin,dev,proc,sys,tmp,lib/modules/diff/upstream,lib/modules/diff/rust}
cp /bin/busybox "$RFS/bin/busybox"
for applet in $("$RFS/bin/busybox" --list); do
	[ -e "$RFS/bin/$applet" ] || ln -s busybox "$RFS/bin/$applet"
done
cp "$UP_KO" "$RFS/lib/modules/diff/upstream/drm_gpusvm_helper.ko"
cp "$RS_KO" "$RFS/lib/modules/diff/rust/drm_gpusvm_helper.ko"
cp "$WORK/mod/gpusvm_vgpu.ko" "$RFS/lib/modules/diff/"
cp "$WORK/dmirror_test" "$WORK/vgpu_bench" "$RFS/bin/"
printf '%s\n' "${BENCH_ARGS:-}" > "$RFS/lib/modules/diff/bench.args"
printf '%s\n' "${DIFF_ONLY:-}" > "$RFS/lib/modules/diff/only"
printf '%s\n' "${DIFF_ORDER:-upstream rust}" > "$RFS/lib/modules/diff/order"
printf '%s\n' "${DIFF_REPEAT:-0}" > "$RFS/lib/modules/diff/repeat"
if [ -n "${MODULES_ROOT:-}" ]; then
	[ -d "$MODULES_ROOT/lib/modules/$kver" ] || die "$MODULES_ROOT/lib/modules/$kver missing"
	cp -a "$MODULES_ROOT/lib/modules/$kver" "$RFS/lib/modules/"
	# The helpers come from diff/, in turn: modprobe must not load the installed one.
	find "$RFS/lib/modules/$kver" -name 'drm_gpusvm_helper.ko*' -delete
	echo "${DIFF_XE:-1}" > "$RFS/lib/modules/diff/xe"
else
	echo 0 > "$RFS/lib/modules/diff/xe"
fi
cp "$HERE/init" "$RFS/init"
chmod +x "$RFS/init"
(cd "$RFS" && find . | cpio -o -H newc --quiet) > "$WORK/initramfs.cpio"

# ------------------------------------------------------------------------- qemu
log "booting $BUILD/arch/x86/boot/bzImage in qemu (TCG, timeout ${QEMU_TIMEOUT}s)"
qstart=$SECONDS
set +e
timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -machine accel=tcg -m 3G -smp 2 -nographic \
	-no-reboot -kernel "$BUILD/arch/x86/boot/bzImage" -initrd "$WORK/initramfs.cpio" \
	-append 'console=ttyS0 panic=-1' < /dev/null > "$WORK/serial.raw" 2>&1
qemu_rc=$?
set -e
log "qemu exited with $qemu_rc after $((SECONDS - qstart))s"
SERIAL=$OUT/serial.log
tr -d '\r' < "$WORK/serial.raw" > "$SERIAL"

# ------------------------------------------------------------------------- verdict
ok=1
[ "$qemu_rc" = 0 ] || { echo "qemu exited with $qemu_rc (124: timeout)" >&2; ok=0; }
grep -q '^DIFF-STEP: DONE$' "$SERIAL" || { echo "the guest did not finish" >&2; ok=0; }
if grep -a '^DIFF-STEP: FAIL' "$SERIAL" >&2; then ok=0; fi
for impl in upstream rust; do
	sed -n "/^DIFF-OUT-BEGIN $impl\$/,/^DIFF-OUT-END $impl\$/p" "$SERIAL" | sed '1d;$d' |
		grep -a '^diff: ' > "$OUT/$impl.diff.txt" || true
	# Both rounds' lines (the markers repeat).
	sed -n "/^BENCH-OUT-BEGIN $impl\$/,/^BENCH-OUT-END $impl\$/p" "$SERIAL" |
		grep -a '^bench: ' > "$OUT/$impl.bench.txt" || true
	grep -q '^diff: DONE ' "$OUT/$impl.diff.txt" || { echo "the suite did not finish over $impl" >&2; ok=0; }
	[ "$(grep -c '^bench: DONE failed=0$' "$OUT/$impl.bench.txt")" = 2 ] ||
		{ echo "the benchmarks did not finish cleanly (twice) over $impl" >&2; grep 'ERROR' "$OUT/$impl.bench.txt" >&2; ok=0; }
done
if grep -naE 'BUG:|WARNING:|Oops|Call Trace|Unknown symbol' "$SERIAL" >&2; then
	echo "the kernel log has errors" >&2
	ok=0
fi

# Per case: both outcomes, and the verdict.
EXPECTED=$HERE/expected-differences.txt
awk -v expected="$EXPECTED" '
	function outcome(line,   o) { o = line; sub(/^diff: [^ ]+ /, "", o); sub(/ res=.*$/, "", o); return o }
	function res(line,   r) { r = line; sub(/^.* res=/, "", r); return r }
	BEGIN {
		while ((getline l < expected) > 0) {
			if (l ~ /^#/ || l ~ /^[ \t]*$/) continue
			split(l, f, "\t")
			want[f[1]] = f[2]
		}
	}
	FNR == 1 { file++ }
	/^diff: DONE/ { next }
	{
		name = $2
		if (file == 1) { up[name] = $0; order[++n] = name } else { rs[name] = $0; if (!(name in up)) order[++n] = name }
	}
	END {
		failed = 0
		for (i = 1; i <= n; i++) {
			c = order[i]
			u = (c in up) ? outcome(up[c]) : "missing"
			r = (c in rs) ? outcome(rs[c]) : "missing"
			us = (u ~ /^ok/) ? "ok" : (u == "missing" ? "missing" : "not ok")
			rshort = (r ~ /^ok/) ? "ok" : (r == "missing" ? "missing" : "not ok")
			if (rshort != "ok") {
				verdict = "FAIL: ours must pass (" r ")"
			} else if (c in want) {
				if (us == "not ok" && index(u, want[c]) > 0)
					verdict = "expected: upstream bug reproduced (" want[c] ")"
				else
					verdict = "FAIL: upstream was expected to fail with \"" want[c] "\", got \"" u "\""
			} else if (us != "ok") {
				verdict = "FAIL: unexpected difference: upstream " u
			} else if (res(up[c]) != res(rs[c])) {
				verdict = "FAIL: residency differs: upstream " res(up[c]) " rust " res(rs[c])
			} else {
				verdict = "same"
			}
			if (verdict ~ /^FAIL/) failed++
			printf "GPUSVM-DIFF: %s upstream=%s rust=%s %s\n", c, us, rshort, verdict
		}
		for (c in want) if (!(c in up) && !(c in rs)) {
			printf "GPUSVM-DIFF: %s listed in expected-differences.txt but never ran: FAIL\n", c
			failed++
		}
		printf "GPUSVM-DIFF: DONE failed=%d\n", failed
	}' "$OUT/upstream.diff.txt" "$OUT/rust.diff.txt" > "$OUT/summary.txt"

# Per benchmark: the best of the two rounds for each, and the ratio Rust/upstream.
awk '
	FNR == 1 { file++ }
	/^bench: DONE/ || !/ns_per_op=/ { next }
	{
		v = $3; sub(/^ns_per_op=/, "", v); v += 0
		if (file == 1) {
			if (!($2 in up)) { order[++n] = $2; up[$2] = v } else if (v < up[$2]) up[$2] = v
		} else if (!($2 in rs) || v < rs[$2]) rs[$2] = v
	}
	END {
		for (i = 1; i <= n; i++) {
			b = order[i]
			if (!(b in rs) || up[b] == 0) continue
			printf "GPUSVM-BENCH: %s upstream=%s rust=%s rust/upstream=%.2f\n", b, up[b], rs[b], rs[b] / up[b]
		}
	}' "$OUT/upstream.bench.txt" "$OUT/rust.bench.txt" >> "$OUT/summary.txt"

cat "$OUT/summary.txt"
grep -q '^GPUSVM-DIFF: DONE failed=0$' "$OUT/summary.txt" || ok=0
grep -a '^DIFF-STEP:' "$SERIAL" >&2 || true
if [ "$ok" != 1 ]; then
	echo "---- end of the serial log" >&2
	tail -n 80 "$SERIAL" >&2
	die "differential run FAILED after $((SECONDS - START))s (serial log $SERIAL)"
fi
log "differential run passed"
