#!/usr/bin/env bash
# The gpusvm core inside a real Linux kernel, proven in qemu (issue 8; docs/KERNEL.md).
#
# On a Debian 12 machine (root; apt and the Rust toolchains available) this script
#   1. installs the ingredients: Debian's linux-source-6.12, rustc-web 1.85 (the compiler of the
#      kernel build) with its library sources, libclang, qemu, busybox, gcc; bindgen-cli 0.69.5
#      from crates.io into the build directory;
#   2. builds a Rust-enabled 6.12 kernel from `make tinyconfig` plus kernel-shim/kernel.config;
#   3. builds the out-of-tree module gpusvm_dmirror (kernel-shim/), which links the unchanged
#      gpusvm-core crate and its dependencies, and two static test programs: the device's own
#      (kernel-shim/test/dmirror_test.c) and the kernel's HMM selftest (hmm-tests);
#   4. boots the kernel in qemu (TCG) with a busybox initramfs whose /init
#      (kernel-shim/initramfs/init) runs everything and powers off;
#   5. exits 0 only if the serial log shows every step passing.
#
# Everything is built under target/kernel/ (gitignored); re-running reuses what is there. The
# kernel build directory is keyed on the kernel, configuration, compiler and bindgen versions
# and rebuilt from scratch when the key changes.
#
# Environment: GPUSVM_KERNEL_OUT (build directory, default target/kernel),
# GPUSVM_KERNEL_SKIP_APT=1 (skip the package step), GPUSVM_KERNEL_QEMU_TIMEOUT (seconds, 600),
# GPUSVM_KERNEL_LOCKDEP=1 (also apply kernel-shim/kernel-lockdep.config: a lockdep kernel, in
# its own build directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHIM=$ROOT/kernel-shim
OUT=${GPUSVM_KERNEL_OUT:-$ROOT/target/kernel}
JOBS=$(nproc)
RUSTC_WEB=1.85.0+dfsg3-1~deb12u3
BINDGEN_VERSION=0.69.5
QEMU_TIMEOUT=${GPUSVM_KERNEL_QEMU_TIMEOUT:-600}
START=$SECONDS

log() { printf '[kernel-test +%3ss] %s\n' $((SECONDS - START)) "$*"; }
die() { printf '[kernel-test] error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$OUT"

# ------------------------------------------------------------------------------- 1. packages
if [ "${GPUSVM_KERNEL_SKIP_APT:-0}" != 1 ]; then
	log "installing packages (apt)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# qemu-system-x86 may replace a newer qemu-utils from backports; nothing here needs it.
	apt-get install -y -qq --no-install-recommends --allow-downgrades \
		"rustc-web=$RUSTC_WEB" "libstd-rust-web-dev=$RUSTC_WEB" "rust-web-src=$RUSTC_WEB" \
		linux-source-6.12 libclang-dev qemu-system-x86 busybox-static cpio bc flex bison \
		libelf-dev libssl-dev build-essential kmod xz-utils >/dev/null
fi
RUSTC=/usr/bin/rustc
[ -x "$RUSTC" ] || die "$RUSTC missing (rustc-web)"
"$RUSTC" --version | grep -q '^rustc 1\.85\.' || die "$RUSTC is not rustc 1.85: $("$RUSTC" --version)"

# The kernel source is unpacked while bindgen compiles (one is I/O-bound, the other not).
KPKG=$(dpkg-query -W -f='${Version}' linux-source-6.12)
KTAR=/usr/src/linux-source-6.12.tar.xz
[ -f "$KTAR" ] || die "$KTAR missing (linux-source-6.12)"
SRC=$OUT/linux-source-$KPKG
extract_pid=
if [ ! -f "$SRC/.gpusvm-extracted" ]; then
	log "extracting linux-source $KPKG (in the background)"
	rm -rf "$SRC" "$OUT/extract"
	mkdir -p "$OUT/extract"
	(tar -C "$OUT/extract" -xf "$KTAR" &&
		mv "$OUT/extract/linux-source-6.12" "$SRC" &&
		rmdir "$OUT/extract" && touch "$SRC/.gpusvm-extracted") &
	extract_pid=$!
fi

BINDGEN=$OUT/bindgen/bin/bindgen
if ! "$BINDGEN" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION (cargo install)"
	cargo install --quiet bindgen-cli --version "$BINDGEN_VERSION" --locked \
		--root "$OUT/bindgen" -j "$JOBS"
fi
if [ -n "$extract_pid" ]; then
	wait "$extract_pid" || die "extracting $KTAR failed"
fi

# ---------------------------------------------------------------------------- 2. the kernel
FRAGMENTS=("$SHIM/kernel.config")
KBUILD=$OUT/build
if [ "${GPUSVM_KERNEL_LOCKDEP:-0}" = 1 ]; then
	FRAGMENTS+=("$SHIM/kernel-lockdep.config")
	KBUILD=$OUT/build-lockdep
fi
KMAKE=(make -C "$SRC" O="$KBUILD" RUSTC="$RUSTC" HOSTRUSTC="$RUSTC" BINDGEN="$BINDGEN")
KEY="linux-source $KPKG; $(cat "${FRAGMENTS[@]}" | sha256sum | cut -c1-16); $("$RUSTC" --version); $("$BINDGEN" --version); $(gcc -dumpfullversion)"
if [ "$(cat "$KBUILD/.gpusvm-key" 2>/dev/null)" != "$KEY" ]; then
	log "configuring the kernel (tinyconfig + ${FRAGMENTS[*]#"$ROOT/"})"
	rm -rf "$KBUILD"
	mkdir -p "$KBUILD"
	"${KMAKE[@]}" tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$KBUILD" "$KBUILD/.config" \
		"${FRAGMENTS[@]}" >/dev/null
	"${KMAKE[@]}" olddefconfig >/dev/null
	# Options silently drop when a dependency is missing: every line must have survived.
	missing=$(cat "${FRAGMENTS[@]}" |
		grep -E '^(CONFIG_[A-Z0-9_]+=|# CONFIG_[A-Z0-9_]+ is not set)' |
		while read -r line; do grep -qxF "$line" "$KBUILD/.config" || echo "$line"; done)
	[ -z "$missing" ] || die "kernel options not applied: $missing"
	echo "$KEY" > "$KBUILD/.gpusvm-key"
fi
log "building the kernel (make -j$JOBS)"
"${KMAKE[@]}" -j"$JOBS" all > "$OUT/kernel-build.log" 2>&1 ||
	{ tail -n 60 "$OUT/kernel-build.log"; die "kernel build failed (log: $OUT/kernel-build.log)"; }

# --------------------------------------------------------------- 3. the module and the tests
# The core's dependency closure as Cargo resolves it (no default features), with sources
# unpacked from Cargo's download cache into the build directory.
log "resolving gpusvm-core's dependencies (cargo)"
(cd "$ROOT" && cargo fetch --quiet)
CARGO_DIR=${CARGO_HOME:-$HOME/.cargo}
edition_of() { # Cargo.toml [workspace Cargo.toml]
	local e
	e=$(sed -n 's/^edition *= *"\([0-9]*\)".*/\1/p' "$1" | head -n1)
	if [ -z "$e" ] && grep -q '^edition.workspace *= *true' "$1"; then
		e=$(sed -n 's/^edition *= *"\([0-9]*\)".*/\1/p' "$2" | head -n1)
	fi
	[ -n "$e" ] || die "no edition in $1"
	echo "$e"
}
DEPS=$OUT/deps
mkdir -p "$DEPS"
{
	echo "# Written by scripts/kernel-test.sh from 'cargo tree -p gpusvm-core --no-default-features'."
	echo "GS_CORE_SRC := $ROOT/crates/gpusvm-core/src/lib.rs"
	echo "GS_CORE_EDITION := $(edition_of "$ROOT/crates/gpusvm-core/Cargo.toml" "$ROOT/Cargo.toml")"
} > "$OUT/deps.mk"
seen=""
while IFS='|' read -r pkg features; do
	name=${pkg%% *}
	ver=${pkg#* v}
	ver=${ver%% *}
	[ "$name" = gpusvm-core ] && continue
	[ -z "$features" ] || die "$name is used with features '$features'; kernel-shim/Kbuild builds it without"
	case $name in
	bitflags) var=GS_BITFLAGS ;;
	intrusive-collections) var=GS_INTRUSIVE ;;
	*) die "gpusvm-core depends on $name, which kernel-shim/Kbuild does not build yet" ;;
	esac
	dir=$DEPS/$name-$ver
	if [ ! -f "$dir/Cargo.toml" ]; then
		crate=$(ls "$CARGO_DIR"/registry/cache/*/"$name-$ver.crate" 2>/dev/null | head -n1 || true)
		[ -n "$crate" ] || die "$name-$ver.crate not in $CARGO_DIR/registry/cache"
		tar -C "$DEPS" -xzf "$crate"
	fi
	echo "${var}_SRC := $dir/src/lib.rs" >> "$OUT/deps.mk"
	echo "${var}_EDITION := $(edition_of "$dir/Cargo.toml")" >> "$OUT/deps.mk"
	seen="$seen $name"
done < <(cd "$ROOT" && cargo tree --quiet -p gpusvm-core --no-default-features -e normal \
	--prefix none --format '{p}|{f}' | sort -u)
for need in bitflags intrusive-collections; do
	case " $seen " in *" $need "*) ;; *) die "gpusvm-core no longer depends on $need: update kernel-shim/Kbuild" ;; esac
done

log "building the module gpusvm_dmirror"
MOD=$OUT/module
rm -rf "$MOD"
cp -r "$SHIM" "$MOD"
cp "$OUT/deps.mk" "$MOD/deps.mk"
"${KMAKE[@]}" M="$MOD" -j"$JOBS" modules > "$OUT/module-build.log" 2>&1 ||
	{ cat "$OUT/module-build.log"; die "module build failed"; }
# Case-insensitive: modpost reports as "WARNING: modpost: ...".
if grep -iE '^(warning|error)|: (warning|error):' "$OUT/module-build.log"; then
	die "the module build has warnings (log: $OUT/module-build.log)"
fi

log "building the test programs"
gcc -static -O2 -Wall -Wextra -Werror -I"$SHIM/include" -o "$OUT/dmirror_test" \
	"$SHIM/test/dmirror_test.c" -lpthread
(cd "$SRC/tools/testing/selftests/mm" &&
	gcc -static -O2 -Wall -I"$SRC" -U_FORTIFY_SOURCE -o "$OUT/hmm-tests" hmm-tests.c \
		-lrt -lpthread -lm)

# -------------------------------------------------------------------------------- 4. qemu
log "assembling the initramfs"
RFS=$OUT/rootfs
rm -rf "$RFS"
mkdir -p "$RFS"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$RFS/bin/busybox"
for applet in $("$RFS/bin/busybox" --list); do
	[ -e "$RFS/bin/$applet" ] || ln -s busybox "$RFS/bin/$applet"
done
cp "$SHIM/initramfs/init" "$RFS/init"
chmod +x "$RFS/init"
cp "$MOD/gpusvm_dmirror.ko" "$KBUILD/lib/test_hmm.ko" "$RFS/lib/modules/"
cp "$OUT/dmirror_test" "$OUT/hmm-tests" "$RFS/bin/"
(cd "$RFS" && find . | cpio -o -H newc --quiet) > "$OUT/initramfs.cpio"

log "booting the kernel in qemu (TCG)"
SERIAL=$OUT/serial.log
set +e
timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -machine accel=tcg -m 2G -smp 2 -nographic \
	-no-reboot -kernel "$KBUILD/arch/x86/boot/bzImage" -initrd "$OUT/initramfs.cpio" \
	-append 'console=ttyS0 panic=-1' > "$SERIAL.raw" 2>&1
qemu_rc=$?
set -e
# The serial console ends lines with CR LF.
tr -d '\r' < "$SERIAL.raw" > "$SERIAL"

# ------------------------------------------------------------------------------- 5. verdict
STEPS="two_cpus insmod_gpusvm_dmirror dmirror_test insmod_test_hmm hmm_tests dmirror_test_again
	rmmod_test_hmm rmmod_gpusvm_dmirror unload_clean kernel_log_clean"
ok=1
[ "$qemu_rc" = 0 ] || { echo "qemu exited with $qemu_rc (124: timeout)"; ok=0; }
for s in $STEPS; do
	grep -q "^GPUSVM-KTEST: PASS $s\$" "$SERIAL" || { echo "step $s did not pass"; ok=0; }
done
grep -q '^GPUSVM-KTEST: DONE failed=0' "$SERIAL" || ok=0
echo "---- serial log summary ($SERIAL)"
grep -aE '^(GPUSVM-KTEST|ok - |not ok|dmirror-test:|hmm-tests:|# concurrent|# thp)|gpusvm_dmirror:' \
	"$SERIAL" || true
if [ "$ok" != 1 ]; then
	echo "---- end of the serial log"
	tail -n 150 "$SERIAL"
	die "kernel test FAILED after $((SECONDS - START))s"
fi
log "kernel test passed"
