//! Structural invariants of a settled simulated world, shared by the state-machine test and the
//! `unmap_sequences` fuzz target.
//!
//! After the garbage collectors have run (`World::settle`), for every live process with an open
//! GPU VM:
//!
//! - its SVM ranges are in address order and never overlap;
//! - every page of every range lies in a VMA (a range may cross a VMA boundary that a later
//!   `mprotect` created, as upstream allows, but never covers unmapped memory);
//! - every system-memory DMA entry of a valid pages object is a live DMA mapping of the frame the
//!   CPU page table maps at that address *now* (the HMM rule, seen from the outside);
//!
//! and across the world, the live DMA mappings of every device are exactly the system entries of
//! valid pages (stale pages hold no mapping: the accounting balances).

use gpusvm_core::{Protocol, Span};
use gpusvm_sim::mem::PAGE;
use gpusvm_sim::mm::Pte;
use gpusvm_sim::world::World;

/// Checks the invariants of the module docs; returns one message per violation (empty: all
/// hold). The world must be settled.
pub fn check_world(world: &World) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(all) = Span::new(0, 1 << 47) else {
        return vec!["cannot build the span of the user address space".into()];
    };
    let mut system_entries = 0usize;
    for p in world.processes() {
        let mut guard = p.vm.lock();
        let Some(svm) = guard.as_mut() else { continue };
        let nl = svm.notifier_lock();
        let mut prev_end = 0;
        for r in svm.ranges(all) {
            let who = format!("{}: range {:#x}..{:#x}", p.name, r.start(), r.end());
            if r.start() < prev_end {
                problems.push(format!(
                    "{who} overlaps the previous range (ends {prev_end:#x})"
                ));
            }
            prev_end = r.end();
            let mut a = r.start();
            while a < r.end() {
                match p.mm.vma(a) {
                    Some(vma) if vma.end > a => a = vma.end,
                    _ => {
                        problems.push(format!("{who} covers unmapped memory at {a:#x}"));
                        break;
                    }
                }
            }
            for (d, pages) in r.data().pages.iter().enumerate() {
                let Some(dev) = u32::try_from(d).ok().and_then(|d| world.shared.device(d)) else {
                    problems.push(format!("{who}: pages of unknown device {d}"));
                    continue;
                };
                let _ = svm.pages_entries(&nl, pages, |entries| {
                    let mut addr = r.start();
                    for e in entries {
                        let n = 1u64 << e.order();
                        if e.proto() == Protocol::SYSTEM {
                            system_entries += 1;
                            for k in 0..n {
                                let at = addr + k * PAGE;
                                let Some((pfn, _)) = dev.dma.translate(e.addr() + k * PAGE) else {
                                    problems.push(format!(
                                        "{who}: valid entry at {at:#x} is not a live DMA mapping"
                                    ));
                                    continue;
                                };
                                match p.mm.pte(at) {
                                    Some(Pte::Present { pfn: cpu, .. }) if cpu == pfn => {}
                                    other => problems.push(format!(
                                        "{who}: device {d} maps frame {pfn:#x} at {at:#x}, \
                                         the CPU maps {other:?}"
                                    )),
                                }
                            }
                        }
                        addr += n * PAGE;
                    }
                });
            }
        }
    }
    let live: usize = world.shared.devices().iter().map(|d| d.dma.live()).sum();
    if system_entries != live {
        problems.push(format!(
            "DMA accounting: {live} live mappings, {system_entries} system entries of valid pages"
        ));
    }
    problems
}
