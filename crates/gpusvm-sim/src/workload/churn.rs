//! `churn`: malloc/free churn, the way an application with a caching allocator (jemalloc,
//! tcmalloc, a framework's pool) uses shared virtual memory.
//!
//! The allocator owns an arena of `--size` bytes (rounded up to 2 MiB): it is reserved with
//! `mmap` and released, and allocations are then carved first-fit from it and mapped with `MAP_FIXED`
//! (`mmap at=`); a free is a `munmap` that returns the extent to the free list, coalescing with
//! its neighbours, so freed addresses are reused by later allocations. That is the interesting
//! case for SVM: a new buffer at an address whose old ranges, notifiers and GPU mappings must all
//! be gone.
//!
//! Each step:
//! 1. [`ALLOCS_PER_STEP`] allocations of mixed sizes — 60% small (4K to 60K), 30% medium (64K
//!    to 1M, 64K-aligned), 10% large (2M, 2M-aligned; when `--size` is at least 8M) — freeing the
//!    oldest live allocations (of earlier steps) while no free extent fits. Half the new
//!    buffers are initialized by the CPU (memset) and then read by a GPU; the others get a
//!    header written by the CPU and their body written by a GPU (GPU first touch). Chunk
//!    selection shows in the range sizes: 64K chunks need their CPU pages present, so
//!    GPU-first-touch buffers below 2M get 4K ranges; small buffers stay in RAM (below the
//!    migration threshold) and larger ones migrate to VRAM.
//! 2. [`USES_PER_STEP`] random live buffers are read back whole by a GPU and their first and last
//!    pages by the CPU.
//! 3. About 40% of the live buffers are freed (the CPU checks one page of each first).
//!
//! At the end everything is freed and the process must have no SVM range left.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::session::{
    cpu_check, cpu_fill, gpu_check, gpu_fill, lane, Checked, Lane, OrFail, Session,
};
use crate::mem::PAGE;
use crate::mm::{MapKind, Prot};

/// Allocations per step.
pub const ALLOCS_PER_STEP: usize = 16;
/// Live buffers read back per step.
pub const USES_PER_STEP: usize = 8;
/// Share of live buffers freed each step, percent.
const FREE_PERCENT: u64 = 40;
/// Bytes of allocator header the CPU writes.
const HEADER: u64 = 64;

const K: u64 = 1 << 10;
const M: u64 = 1 << 20;

/// One live allocation.
#[derive(Clone, Debug)]
struct Alloc {
    id: u64,
    start: u64,
    len: u64,
    seed: u64,
    /// Initialized by the CPU (memset, then the GPU reads it) rather than by the GPU.
    cpu_init: bool,
}

/// A first-fit allocator over `[base, base + len)` with coalescing frees.
#[derive(Debug)]
struct Arena {
    /// Free extents: start → length.
    free: BTreeMap<u64, u64>,
}

impl Arena {
    fn new(base: u64, len: u64) -> Self {
        Arena {
            free: BTreeMap::from([(base, len)]),
        }
    }

    /// The lowest `align`-aligned address with `len` free bytes, taken out of the free list.
    fn alloc(&mut self, len: u64, align: u64) -> Option<u64> {
        let (start, extent, at) = self.free.iter().find_map(|(&s, &l)| {
            let at = s.checked_next_multiple_of(align)?;
            (at.checked_add(len)? <= s + l).then_some((s, l, at))
        })?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        if at + len < start + extent {
            self.free.insert(at + len, start + extent - at - len);
        }
        Some(at)
    }

    /// Returns `[start, start + len)`, merging it with adjacent free extents.
    fn release(&mut self, mut start: u64, mut len: u64) {
        if let Some((&s, &l)) = self.free.range(..start).next_back() {
            if s + l == start {
                self.free.remove(&s);
                start = s;
                len += l;
            }
        }
        if let Some(l) = self.free.remove(&(start + len)) {
            len += l;
        }
        self.free.insert(start, len);
    }
}

/// A size class draw: (length, alignment).
fn size_class(rng: &mut super::session::Rng, budget: u64) -> (u64, u64) {
    let roll = rng.below(100);
    let (len, align) = if roll < 60 {
        (rng.between(1, 15) * PAGE, PAGE)
    } else if roll < 90 || budget < 8 * M {
        (rng.between(1, 16) * 64 * K, 64 * K)
    } else {
        (2 * M, 2 * M)
    };
    (len.min((budget / 4 / PAGE).max(1) * PAGE), align)
}

/// Maps a new buffer at its place and initializes it: CPU header, GPU body.
fn malloc(w: &crate::world::World, a: &Alloc, dev: u32) -> Checked {
    w.mmap(
        &format!("m{}", a.id),
        a.len,
        None,
        Some(a.start),
        Prot::Rw,
        MapKind::Anon,
    )
    .or_fail(|| format!("mmap of allocation {} at {:#x}", a.id, a.start))?;
    if a.cpu_init {
        cpu_fill(w, a.start, a.len, a.seed)?;
        return gpu_check(w, dev, a.start, a.len, a.seed);
    }
    let header = HEADER.min(a.len);
    cpu_fill(w, a.start, header, a.seed)?;
    if a.len > header {
        gpu_fill(w, dev, a.start + header, a.len - header, a.seed)?;
    }
    Ok(())
}

/// Unmaps a buffer.
fn free(w: &crate::world::World, a: &Alloc) -> Checked {
    w.munmap(a.start, a.len)
        .or_fail(|| format!("munmap of allocation {} at {:#x}", a.id, a.start))
}

/// Runs the workload.
pub(super) fn run(s: &mut Session) -> Checked {
    let arena_len = s.params.size.next_multiple_of(2 * M);
    let budget = arena_len;
    // Reserve an address range the way allocators do, then give it back: allocations are
    // placed in it with MAP_FIXED.
    let base = s.mmap("arena", arena_len, 2 * M)?;
    s.world
        .munmap(base, arena_len)
        .or_fail(|| "munmap of the arena reservation".into())?;
    s.track("allocator arena", base, arena_len);

    let mut arena = Arena::new(base, arena_len);
    let mut live: VecDeque<Alloc> = VecDeque::new();
    let mut live_bytes = 0u64;
    let mut used_addresses = BTreeSet::new();
    let (mut made, mut reused, mut freed) = (0u64, 0u64, 0u64);
    let devices = u64::from(s.devices());
    let seed = s.params.seed;

    for step in 0..s.params.steps {
        // 1. Allocate, freeing the oldest buffers under pressure.
        let mut evicted: Vec<Alloc> = Vec::new();
        let mut fresh: Vec<Alloc> = Vec::new();
        let first_fresh = made;
        for _ in 0..ALLOCS_PER_STEP {
            let (len, align) = size_class(&mut s.rng, budget);
            let start = loop {
                if live_bytes + len <= budget {
                    if let Some(at) = arena.alloc(len, align) {
                        break Some(at);
                    }
                }
                // Only buffers of earlier steps are freed here: this step's are not mapped yet.
                match live.front() {
                    Some(old) if old.id < first_fresh => {
                        arena.release(old.start, old.len);
                        live_bytes -= old.len;
                        evicted.extend(live.pop_front());
                    }
                    _ => break None,
                }
            };
            let Some(start) = start else { continue };
            reused += u64::from(!used_addresses.insert(start));
            let a = Alloc {
                id: made,
                start,
                len,
                seed: super::session::derive_seed(seed, &[step, made]),
                cpu_init: s.rng.percent(50),
            };
            made += 1;
            live_bytes += len;
            live.push_back(a.clone());
            fresh.push(a);
        }
        freed += evicted.len() as u64;
        if !evicted.is_empty() {
            let lanes: Vec<Lane<'_>> = evicted
                .into_iter()
                .map(|a| lane(move |w| free(w, &a)))
                .collect();
            s.batch(lanes)?;
        }
        let lanes: Vec<Lane<'_>> = fresh
            .into_iter()
            .map(|a| {
                let dev = (a.id % devices) as u32;
                lane(move |w| malloc(w, &a, dev))
            })
            .collect();
        s.batch(lanes)?;

        // 2. Use some live buffers.
        let mut uses: Vec<Lane<'_>> = Vec::new();
        for _ in 0..USES_PER_STEP.min(live.len()) {
            let Some(a) = live.get(s.rng.below(live.len() as u64) as usize).cloned() else {
                continue;
            };
            let dev = s.rng.below(devices) as u32;
            uses.push(lane(move |w| {
                gpu_check(w, dev, a.start, a.len, a.seed)?;
                cpu_check(w, a.start, PAGE.min(a.len), a.seed)?;
                let last = (a.len - 1) / PAGE * PAGE;
                cpu_check(w, a.start + last, a.len - last, a.seed)
            }));
        }
        s.batch(uses)?;

        // 3. Free some.
        let mut keep = VecDeque::new();
        let mut frees: Vec<Lane<'_>> = Vec::new();
        for a in live.drain(..) {
            if s.rng.percent(FREE_PERCENT) {
                arena.release(a.start, a.len);
                live_bytes -= a.len;
                freed += 1;
                frees.push(lane(move |w| {
                    cpu_check(w, a.start, HEADER.min(a.len), a.seed)?;
                    free(w, &a)
                }));
            } else {
                keep.push_back(a);
            }
        }
        live = keep;
        s.batch(frees)?;
        s.end_step();
    }

    // Free everything: no range may survive over unmapped memory.
    freed += live.len() as u64;
    let lanes: Vec<Lane<'_>> = live
        .into_iter()
        .map(|a| lane(move |w| free(w, &a)))
        .collect();
    s.batch(lanes)?;
    let left = s.world.ranges().or_fail(|| "counting ranges".into())?;
    if left != 0 {
        return Err(super::Failure(format!(
            "{left} SVM ranges survive after every allocation was freed"
        )));
    }
    s.note(format!(
        "{made} allocations, {freed} frees, {reused} reused a freed address; no range left after the last free"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_is_first_fit_aligned_and_coalesces() {
        let mut a = Arena::new(0x20_0000, 0x40_0000);
        assert_eq!(a.alloc(0x1000, 0x1000), Some(0x20_0000));
        assert_eq!(a.alloc(0x1_0000, 0x1_0000), Some(0x21_0000));
        assert_eq!(a.alloc(0x1000, 0x1000), Some(0x20_1000));
        assert_eq!(a.alloc(0x80_0000, 0x1000), None);
        a.release(0x20_0000, 0x1000);
        assert_eq!(
            a.alloc(0x1000, 0x1000),
            Some(0x20_0000),
            "freed space is reused first"
        );
        a.release(0x20_0000, 0x1000);
        a.release(0x20_1000, 0x1000);
        a.release(0x21_0000, 0x1_0000);
        assert_eq!(a.free, BTreeMap::from([(0x20_0000, 0x40_0000)]));
    }
}
