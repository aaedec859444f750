#!/usr/bin/env bash
# Differential drm_gpusvm ABI test in qemu (TCG).
#
#   run-qemu.sh BUILD_DIR HELPER_KO OUTFILE
#
# BUILD_DIR  a finished kernel build (O= directory; its bzImage is booted and the test
#            module is built against it)
# HELPER_KO  the drm_gpusvm_helper.ko to test (upstream's C one or another implementation
#            exporting the same symbols)
# OUTFILE    where the program's "abi: ..." lines go (compare two runs with diff)
#
# Builds gpusvm_abi_test.ko (out of tree, in a scratch copy) and the static abi_test, packs
# a busybox initramfs under $ABI_WORK (default /tmp/abitest/run.XXXXXX), boots BUILD_DIR's
# bzImage, inserts HELPER_KO then gpusvm_abi_test.ko, runs abi_test, unloads both modules and
# powers off. Exits non-zero on a build failure, a qemu failure or timeout, a guest step
# failing, abi_test failing or not finishing, or a kernel log with BUG:, WARNING:, Oops,
# Call Trace or Unknown symbol.
#
# Environment:
#   KSRC             kernel source tree (default: from BUILD_DIR/Makefile)
#   EXTRA_MODULES    space-separated .ko files inserted (in order) before HELPER_KO, for a
#                    helper with dependencies (modinfo -F depends)
#   ABI_TEST_ARGS    arguments of abi_test (e.g. "-u" for the unguarded cases; never
#                    against upstream's C helper)
#   QEMU_TIMEOUT     seconds (default 600)
#   ABI_WORK         scratch directory (default: a new /tmp/abitest/run.XXXXXX)
#   JOBS             make -j (default 2)
#   RUSTC, HOSTRUSTC, BINDGEN, LIBCLANG_PATH  for the kernel's make (defaults: the
#                    /usr/bin/rustc, bindgen-0.71.1 and llvm-19 of this machine)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
START=$SECONDS
log() { printf '[abi-test +%3ss] %s\n' $((SECONDS - START)) "$*" >&2; }
die() { printf '[abi-test] error: %s\n' "$*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: $0 BUILD_DIR HELPER_KO OUTFILE"
BUILD=$(cd "$1" && pwd)
HELPER=$(readlink -f "$2")
OUTFILE=$3
[ -f "$BUILD/arch/x86/boot/bzImage" ] || die "$BUILD/arch/x86/boot/bzImage missing"
[ -f "$HELPER" ] || die "$HELPER missing"
if [ -z "${KSRC:-}" ]; then
	KSRC=$(sed -n 's/^include \(.*\)\/Makefile$/\1/p' "$BUILD/Makefile" 2>/dev/null | head -n1)
	[ -n "$KSRC" ] || KSRC=$BUILD
fi
[ -f "$KSRC/Makefile" ] || die "kernel source $KSRC not found (set KSRC)"
QEMU_TIMEOUT=${QEMU_TIMEOUT:-600}
JOBS=${JOBS:-2}
RUSTC=${RUSTC:-/usr/bin/rustc}
HOSTRUSTC=${HOSTRUSTC:-/usr/bin/rustc}
BINDGEN=${BINDGEN:-/var/cache/gpusvm/bindgen-0.71.1/bin/bindgen}
LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
ABI_TEST_ARGS=${ABI_TEST_ARGS:-}
EXTRA_MODULES=${EXTRA_MODULES:-}
mkdir -p /tmp/abitest
WORK=${ABI_WORK:-$(mktemp -d /tmp/abitest/run.XXXXXX)}
mkdir -p "$WORK"

helper_name=$(modinfo -F name "$HELPER" 2>/dev/null || true)
[ "$helper_name" = drm_gpusvm_helper ] || die "$HELPER is module '$helper_name', not drm_gpusvm_helper"
helper_deps=$(modinfo -F depends "$HELPER")
[ -z "$helper_deps" ] || [ -n "$EXTRA_MODULES" ] ||
	die "$HELPER depends on '$helper_deps': pass them in EXTRA_MODULES"
kver=$(cat "$BUILD/include/config/kernel.release")
helper_ver=$(modinfo -F vermagic "$HELPER" | awk '{print $1}')
[ "$helper_ver" = "$kver" ] || die "$HELPER is for $helper_ver, the build is $kver"

# ------------------------------------------------------------------------- build
log "building gpusvm_abi_test.ko against $BUILD"
rm -rf "$WORK/mod"
mkdir -p "$WORK/mod"
cp "$HERE/gpusvm_abi_test.c" "$HERE/gpusvm_abi_test.h" "$HERE/Kbuild" "$WORK/mod/"
if ! make -C "$KSRC" O="$BUILD" RUSTC="$RUSTC" HOSTRUSTC="$HOSTRUSTC" BINDGEN="$BINDGEN" \
	LIBCLANG_PATH="$LIBCLANG_PATH" M="$WORK/mod" -j"$JOBS" modules > "$WORK/build.log" 2>&1; then
	cat "$WORK/build.log" >&2
	die "module build failed"
fi
if grep -E 'warning:|error:' "$WORK/build.log" >&2; then
	die "module build has warnings"
fi
log "building abi_test (static)"
gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/abi_test" "$HERE/abi_test.c" \
	> "$WORK/gcc.log" 2>&1 || { cat "$WORK/gcc.log" >&2; die "abi_test build failed"; }

# ------------------------------------------------------------------------- initramfs
log "assembling the initramfs in $WORK/rootfs"
RFS=$WORK/rootfs
rm -rf "$RFS"
mkdir -p "$RFS"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$RFS/bin/busybox"
for applet in sh mount insmod rmmod lsmod cat echo dmesg grep reboot sleep test \[ tr; do
	ln -s busybox "$RFS/bin/$applet"
done
cp "$HELPER" "$RFS/lib/modules/drm_gpusvm_helper.ko"
: > "$RFS/lib/modules/extra.list"
for m in $EXTRA_MODULES; do
	[ -f "$m" ] || die "$m missing"
	cp "$m" "$RFS/lib/modules/"
	echo "/lib/modules/$(basename "$m")" >> "$RFS/lib/modules/extra.list"
done
cp "$WORK/mod/gpusvm_abi_test.ko" "$RFS/lib/modules/"
cp "$WORK/abi_test" "$RFS/bin/"
printf '%s\n' "$ABI_TEST_ARGS" > "$RFS/abi_test.args"
cat > "$RFS/init" <<'EOF'
#!/bin/sh
# /init of the gpusvm ABI test guest (kernel-shim/abi-test/run-qemu.sh)
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
echo 7 > /proc/sys/kernel/printk
# two huge pages for the hugetlb case
echo 2 > /proc/sys/vm/nr_hugepages
step() { name=$1; shift; if "$@"; then echo "ABI-STEP: PASS $name"; else echo "ABI-STEP: FAIL $name"; fi; }
echo "ABI-STEP: INFO $(grep -c ^processor /proc/cpuinfo) CPUs, hugepages $(cat /proc/sys/vm/nr_hugepages), thp $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
for m in $(cat /lib/modules/extra.list); do step "insmod_extra $m" insmod "$m"; done
step insmod_helper insmod /lib/modules/drm_gpusvm_helper.ko
step insmod_test insmod /lib/modules/gpusvm_abi_test.ko
step device test -c /dev/gpusvm_abi_test
# keep the console quiet while the program runs: its output goes to a file
echo 1 > /proc/sys/kernel/printk
/bin/abi_test $(cat /abi_test.args) > /tmp/abi.out 2> /tmp/abi.err
rc=$?
# still quiet: kernel messages logged during the run are printed by the console thread
# later, with the loglevel of that moment, and must not land inside the output
echo "ABI-OUT-BEGIN"
cat /tmp/abi.out
echo "ABI-OUT-END"
echo 7 > /proc/sys/kernel/printk
cat /tmp/abi.err
echo "ABI-STEP: INFO abi_test exit $rc"
step abi_test test "$rc" = 0
step rmmod_test rmmod gpusvm_abi_test
step rmmod_helper rmmod drm_gpusvm_helper
unload_clean() { dmesg | grep -q 'gpusvm_abi_test: unloaded, live ranges 0, live notifiers 0'; }
step unload_clean unload_clean
echo "ABI-DMESG-BEGIN"
dmesg
echo "ABI-DMESG-END"
echo "ABI-STEP: DONE"
reboot -f
EOF
chmod +x "$RFS/init"
(cd "$RFS" && find . | cpio -o -H newc --quiet) > "$WORK/initramfs.cpio"

# ------------------------------------------------------------------------- qemu
log "booting $BUILD/arch/x86/boot/bzImage in qemu (TCG, timeout ${QEMU_TIMEOUT}s)"
qstart=$SECONDS
set +e
timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -machine accel=tcg -m 2G -smp 2 -nographic \
	-no-reboot -kernel "$BUILD/arch/x86/boot/bzImage" -initrd "$WORK/initramfs.cpio" \
	-append 'console=ttyS0 panic=-1' < /dev/null > "$WORK/serial.raw" 2>&1
qemu_rc=$?
set -e
log "qemu exited with $qemu_rc after $((SECONDS - qstart))s"
tr -d '\r' < "$WORK/serial.raw" > "$WORK/serial.log"

# ------------------------------------------------------------------------- verdict
SERIAL=$WORK/serial.log
ok=1
[ "$qemu_rc" = 0 ] || { echo "qemu exited with $qemu_rc (124: timeout)" >&2; ok=0; }
for s in insmod_helper insmod_test device abi_test rmmod_test rmmod_helper unload_clean; do
	grep -q "^ABI-STEP: PASS $s\$" "$SERIAL" || { echo "guest step $s did not pass" >&2; ok=0; }
done
grep -q '^ABI-STEP: DONE$' "$SERIAL" || { echo "the guest did not finish" >&2; ok=0; }
if grep -a '^ABI-STEP: FAIL' "$SERIAL" >&2; then ok=0; fi
mkdir -p "$(dirname "$OUTFILE")"
sed -n '/^ABI-OUT-BEGIN$/,/^ABI-OUT-END$/p' "$SERIAL" | sed '1d;$d' > "$OUTFILE"
grep -q '^abi: DONE checks=[0-9]*$' "$OUTFILE" || { echo "abi_test did not finish" >&2; ok=0; }
# the output must be the program's lines only: one per check plus the DONE line
nchecks=$(sed -n 's/^abi: DONE checks=\([0-9]*\)$/\1/p' "$OUTFILE")
nlines=$(grep -c '^abi: ' "$OUTFILE" || true)
if [ -n "$nchecks" ] && [ "$nlines" != $((nchecks + 1)) ]; then
	echo "$OUTFILE has $nlines lines for $nchecks checks" >&2
	ok=0
fi
if grep -nE '\[ *[0-9]+\.[0-9]{6}\]' "$OUTFILE" >&2 || grep -nv '^abi: ' "$OUTFILE" >&2; then
	echo "kernel messages or other text inside the program's output" >&2
	ok=0
fi
if grep -naE 'BUG:|WARNING:|Oops|Call Trace|Unknown symbol' "$SERIAL" >&2; then
	echo "the kernel log has errors" >&2
	ok=0
fi
if grep -a '^abi-error:' "$SERIAL" >&2; then
	ok=0
fi
grep -a '^ABI-STEP:' "$SERIAL" >&2 || true
echo "$(grep -c '^abi: ' "$OUTFILE") lines in $OUTFILE; serial log $SERIAL" >&2
if [ "$ok" != 1 ]; then
	echo "---- end of the serial log" >&2
	tail -n 80 "$SERIAL" >&2
	die "ABI test FAILED after $((SECONDS - START))s"
fi
log "ABI test passed ($(tail -n1 "$OUTFILE"))"
