# SPDX-License-Identifier: GPL-2.0
#
# Shared Kbuild rules for the modules that link the gpusvm core (included by kernel-shim/Kbuild,
# the out-of-tree gpusvm_dmirror, and by drm_gpusvm/Kbuild, the in-tree Rust DRM_GPUSVM):
#
#   bitflags.o, intrusive_collections.o, gpusvm_core.o   the core and its dependencies, each
#       compiled separately as an rlib-style object (--emit=obj + --emit=metadata) with the
#       kernel's own Rust flags against the tree's `core` (rust/libcore.rmeta), the way the
#       kernel builds its own crates (rust/Makefile). Their objects are linked into the module
#       like any other; their .rmeta files let the next crate `--extern` them.
#   shim/gpusvm_kshim.o   the backend traits over Linux (crate gpusvm_kshim), which also
#       depends on the `kernel` crate and on bindings from its own bindgen pass;
#   shim/ext_bindings.rs  that bindgen pass (hmm, migrate_vma, miscdevice, the C helpers);
#   shim/helpers.o        C wrappers of static inline kernel functions.
#
# deps.mk (written by scripts/kernel-test.sh) gives each dependency's source root and edition
# as resolved by Cargo from the workspace's Cargo.lock.

include $(src)/deps.mk

gs_core_objs := shim/gpusvm_kshim.o shim/helpers.o gpusvm_core.o intrusive_collections.o bitflags.o

# ---------------------------------------------------------------------------------------------
# Library crates. `rust_flags` is exactly what Kbuild passes for a Rust object of a module
# (target spec, code model, mitigations, CONFIG_* cfgs, --cfg MODULE); only the edition is
# replaced by the crate's own.

gs_lib_flags = $(filter-out --edition=%,$(rust_flags)) --edition=$(gs-edition) \
	-Zallow-features=$(rust_allowed_features) \
	--crate-type rlib --sysroot=/dev/null -L $(objtree)/rust/ -L $(obj) -L $(obj)/shim \
	--crate-name $(basename $(notdir $@)) --out-dir $(dir $@)

quiet_cmd_gs_rustc_lib = RUSTC L $@
      cmd_gs_rustc_lib = $(gs-env) $(RUSTC_OR_CLIPPY) $(gs_lib_flags) $(gs-extra) \
	--emit=dep-info=$(depfile) --emit=obj=$@ \
	--emit=metadata=$(dir $@)lib$(basename $(notdir $@)).rmeta $< $(cmd_objtool)

# Third-party crates: no features (the core uses them with default-features = false); their
# lints are capped as Cargo does for dependencies.
$(obj)/bitflags.o: private gs-edition = $(GS_BITFLAGS_EDITION)
$(obj)/bitflags.o: private gs-extra = --cap-lints=allow
$(obj)/bitflags.o: $(GS_BITFLAGS_SRC) FORCE
	$(call if_changed_dep,gs_rustc_lib)

$(obj)/intrusive_collections.o: private gs-edition = $(GS_INTRUSIVE_EDITION)
$(obj)/intrusive_collections.o: private gs-extra = --cap-lints=allow
$(obj)/intrusive_collections.o: $(GS_INTRUSIVE_SRC) FORCE
	$(call if_changed_dep,gs_rustc_lib)

# The core, unchanged, without its default `alloc` feature.
$(obj)/gpusvm_core.o: private gs-edition = $(GS_CORE_EDITION)
$(obj)/gpusvm_core.o: private gs-extra = --cap-lints=warn \
	--extern bitflags --extern intrusive_collections
$(obj)/gpusvm_core.o: $(GS_CORE_SRC) $(obj)/bitflags.o $(obj)/intrusive_collections.o FORCE
	$(call if_changed_dep,gs_rustc_lib)

# ---------------------------------------------------------------------------------------------
# The shim's own bindgen pass, modelled on rust/Makefile (Linux 7.2): the kernel's bindgen
# parameters, the object's own C flags minus what libclang does not understand (the same list
# as rust/Makefile's bindgen_skip_c_flags), and an allowlist without recursion so that every
# other type comes from `kernel::bindings`.

gs_bindgen_skip_c_flags := -mno-fp-ret-in-387 -mpreferred-stack-boundary=% \
	-mskip-rax-setup -mgeneral-regs-only -msign-return-address=% \
	-mindirect-branch=thunk-extern -mindirect-branch-register \
	-mfunction-return=thunk-extern -mrecord-mcount -mabi=lp64 \
	-mindirect-branch-cs-prefix -mstack-protector-guard% -mtraceback=no \
	-mno-pointers-to-nested-functions -mno-string \
	-mno-strict-align -mstrict-align -mdirect-extern-access \
	-mexplicit-relocs -mno-check-zero-division \
	-fconserve-stack -falign-jumps=% -falign-loops=% \
	-femit-struct-debug-baseonly -fno-ipa-cp-clone -fno-ipa-sra \
	-fno-partial-inlining -fplugin-arg-arm_ssp_per_task_plugin-% \
	-fno-reorder-blocks -fno-allow-store-data-races -fasan-shadow-offset=% \
	-fzero-call-used-regs=% -fno-stack-clash-protection \
	-fno-inline-functions-called-once -fsanitize=bounds-strict \
	-fstrict-flex-arrays=% -fmin-function-alignment=% \
	-fzero-init-padding-bits=% -mno-fdpic \
	-fdiagnostics-show-context -fdiagnostics-show-context=% \
	--param=% --param asan-% -fno-isolate-erroneous-paths-dereference

gs_bindgen_cflags = $(filter-out $(gs_bindgen_skip_c_flags),$(c_flags)) -DMODULE \
	-D__BINDGEN__ -fno-builtin -w --target=x86_64-linux-gnu -I$(src)/shim

gs_bindgen_allow = \
	--allowlist-function 'gs_.*' \
	--allowlist-function 'hmm_range_fault' \
	--allowlist-function 'migrate_vma_(setup|pages|finalize)' \
	--allowlist-function 'migrate_device_(range|pages|finalize)' \
	--allowlist-function 'misc_(register|deregister)' \
	--allowlist-type 'hmm_range|migrate_vma|miscdevice|hmm_pfn_flags|migrate_vma_direction' \
	--allowlist-var 'GS_CONST_.*|MIGRATE_PFN_.*|HMM_PFN_.*|MIGRATE_VMA_SELECT_.*|MISC_DYNAMIC_MINOR'

quiet_cmd_gs_bindgen = BINDGEN $@
      cmd_gs_bindgen = $(BINDGEN) $< $(shell grep -Ev '^[#]|^$$' $(srctree)/rust/bindgen_parameters) \
	--rust-target 1.85 --use-core --with-derive-default --ctypes-prefix ffi \
	--no-layout-tests --no-debug '.*' --no-recursive-allowlist $(gs_bindgen_allow) \
	-o $@ -- $(gs_bindgen_cflags)

$(obj)/shim/ext_bindings.rs: $(src)/shim/bindings.h $(src)/shim/helpers.h FORCE
	$(call if_changed_dep,gs_bindgen)
targets += shim/ext_bindings.rs

# The shim crate: gpusvm_core + kernel + its bindings. A module that includes this file may set
# GS_SHIM_CFG first: `--cfg gs_count_dma` counts live DMA mappings (a leak check for tests; an
# atomic per map and unmap, so off where nobody reads it).
$(obj)/shim/gpusvm_kshim.o: private gs-edition = 2021
$(obj)/shim/gpusvm_kshim.o: private gs-env = GS_EXT_BINDINGS=$(abspath $(obj)/shim/ext_bindings.rs)
$(obj)/shim/gpusvm_kshim.o: private gs-extra = --extern ffi --extern kernel --extern pin_init \
	--extern gpusvm_core $(GS_SHIM_CFG)
$(obj)/shim/gpusvm_kshim.o: $(src)/shim/lib.rs $(obj)/shim/ext_bindings.rs \
	$(obj)/gpusvm_core.o FORCE
	$(call if_changed_dep,gs_rustc_lib)

