//! `unmap-storm`: partial munmaps of GPU-faulted memory — what `free()` of part of a mapping,
//! `realloc` shrinking in place, or an allocator trimming its pools does under the GPU's feet
//! (IGT's `partial-munmap-*` and `munmap-*` tests).
//!
//! [`SLOTS`] buffers of `--size / 8` bytes (2 MiB-aligned) live at fixed addresses. Each step,
//! per buffer:
//!
//! 1. the buffer is replaced by a fresh mapping at the same address — by an explicit `munmap`
//!    then `mmap` on even steps, by a `MAP_FIXED` `mmap` over what is left on odd steps;
//! 2. the CPU fills it and a GPU reads it all (faulting it in and migrating it to VRAM);
//! 3. holes are punched with `munmap`, in one of three shapes by step: head + tail + middle;
//!    holes straddling range boundaries (2 MiB, or 64K in small buffers); 4K pinholes, one
//!    per 2 MiB;
//! 4. the CPU and the GPU read every surviving page and must find the data; the first page of
//!    every hole must SEGV for the CPU and be refused to the GPU; and no SVM range may cover any
//!    unmapped page (checked page by page, up to 64 pages per hole).
//!
//! At the end the buffers are unmapped and the process must have no range left.

use super::session::{
    cpu_check, cpu_fill, derive_seed, expect_gpu_refused, expect_segv, gpu_check, lane, Checked,
    Failure, Lane, OrFail, Rng, Session,
};
use crate::mem::PAGE;
use crate::mm::{MapKind, Prot};
use crate::world::World;

/// Number of buffers.
pub const SLOTS: u64 = 8;
/// Pages of a hole checked for leftover ranges.
const RANGE_CHECKS_PER_HOLE: u64 = 64;
const K: u64 = 1 << 10;
const M: u64 = 1 << 20;

/// Page runs `(first page, pages)` where `mask` is `value`.
fn runs(mask: &[bool], value: bool) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < mask.len() {
        if mask[i] == value {
            let start = i;
            while i < mask.len() && mask[i] == value {
                i += 1;
            }
            out.push((start as u64, (i - start) as u64));
        } else {
            i += 1;
        }
    }
    out
}

/// The holes of one buffer of `pages` pages for `step`: true where the page is unmapped.
/// Always leaves pages mapped.
fn holes(rng: &mut Rng, pages: u64, step: u64) -> Vec<bool> {
    let mut mask = vec![false; pages as usize];
    let mut punch = |first: u64, n: u64| {
        for p in first..(first + n).min(pages) {
            if let Some(m) = mask.get_mut(p as usize) {
                *m = true;
            }
        }
    };
    let eighth = (pages / 8).max(1);
    match step % 3 {
        0 => {
            // Head, tail and a middle piece.
            punch(0, rng.between(1, eighth));
            let tail = rng.between(1, eighth);
            punch(pages - tail, tail);
            let mid = rng.between(pages / 4, pages / 2);
            punch(mid, rng.between(1, eighth));
        }
        1 => {
            // Across range boundaries: 2M ones, or 64K ones in small buffers.
            let unit = if pages * PAGE > 2 * M { 2 * M } else { 64 * K } / PAGE;
            let mut b = unit;
            let mut n = 0;
            while b < pages && n < 4 {
                let before = rng.between(1, (unit / 4).max(1));
                let after = rng.between(1, (unit / 4).max(1));
                punch(b.saturating_sub(before), before + after);
                b += unit;
                n += 1;
            }
            if n == 0 {
                punch(pages / 2, 1);
            }
        }
        _ => {
            // One 4K pinhole per 2M (at least one).
            let per = (2 * M / PAGE).min(pages);
            let mut first = 0;
            while first < pages {
                punch(first + rng.below(per.min(pages - first)), 1);
                first += per;
            }
        }
    }
    // Never unmap the whole buffer: keep its second page at least.
    if mask.iter().all(|&h| h) {
        if let Some(m) = mask.get_mut(1.min(pages as usize - 1)) {
            *m = false;
        }
    }
    mask
}

/// Checks one buffer after its holes were punched.
fn check_slot(w: &World, dev: u32, base: u64, mask: &[bool], seed: u64) -> Checked {
    for (first, n) in runs(mask, false) {
        let (addr, len) = (base + first * PAGE, n * PAGE);
        gpu_check(w, dev, addr, len, seed)?;
        cpu_check(w, addr, len, seed)?;
    }
    for (first, n) in runs(mask, true) {
        let addr = base + first * PAGE;
        let mut buf = [0u8; 8];
        expect_segv(w.cpu_read(addr, &mut buf), || {
            format!("CPU read in the hole at {addr:#x}")
        })?;
        expect_gpu_refused(w.gpu_read(dev, addr, &mut buf), || {
            format!("GPU {dev} read in the hole at {addr:#x}")
        })?;
        let stride = n.div_ceil(RANGE_CHECKS_PER_HOLE).max(1);
        let mut p = 0;
        while p < n {
            let a = addr + p * PAGE;
            if let Some(size) = w.chunk(a).or_fail(|| "range lookup".into())? {
                return Err(Failure(format!(
                    "a {size:#x}-byte SVM range still covers unmapped {a:#x}"
                )));
            }
            p += stride;
        }
    }
    Ok(())
}

/// Runs the workload.
pub(super) fn run(s: &mut Session) -> Checked {
    let len = (s.params.size / SLOTS / PAGE).max(1) * PAGE;
    let pages = len / PAGE;
    let mut slots = Vec::new();
    for k in 0..SLOTS {
        let addr = s.mmap(&format!("slot{k}"), len, 2 * M)?;
        s.track(&format!("buffer {k}"), addr, len);
        slots.push(addr);
    }
    let devices = u64::from(s.devices());
    let mut holes_punched = 0u64;
    for step in 0..s.params.steps {
        let seeds: Vec<u64> = (0..SLOTS)
            .map(|k| derive_seed(s.params.seed, &[step, k]))
            .collect();
        // 1-2. Replace, fill, fault in.
        let lanes: Vec<Lane<'_>> = slots
            .iter()
            .zip(&seeds)
            .enumerate()
            .map(|(k, (&addr, &seed))| {
                let dev = (k as u64 % devices) as u32;
                lane(move |w| {
                    if step > 0 {
                        if step % 2 == 0 {
                            w.munmap(addr, len)
                                .or_fail(|| format!("munmap of buffer {k}"))?;
                        }
                        w.mmap(
                            &format!("slot{k}"),
                            len,
                            None,
                            Some(addr),
                            Prot::Rw,
                            MapKind::Anon,
                        )
                        .or_fail(|| format!("mmap of buffer {k} at {addr:#x}"))?;
                    }
                    cpu_fill(w, addr, len, seed)?;
                    gpu_check(w, dev, addr, len, seed)
                })
            })
            .collect();
        s.batch(lanes)?;

        // 3. Punch holes.
        let masks: Vec<Vec<bool>> = (0..SLOTS).map(|_| holes(&mut s.rng, pages, step)).collect();
        let mut lanes: Vec<Lane<'_>> = Vec::new();
        for (k, (&addr, mask)) in slots.iter().zip(&masks).enumerate() {
            let hole_runs = runs(mask, true);
            holes_punched += hole_runs.len() as u64;
            lanes.push(lane(move |w| {
                hole_runs.into_iter().try_for_each(|(first, n)| {
                    w.munmap(addr + first * PAGE, n * PAGE)
                        .or_fail(|| format!("munmap of pages {first}..{} of buffer {k}", first + n))
                })
            }));
        }
        s.batch(lanes)?;

        // 4. Check what is left, and the holes.
        let lanes: Vec<Lane<'_>> = slots
            .iter()
            .zip(masks)
            .zip(&seeds)
            .enumerate()
            .map(|(k, ((&addr, mask), &seed))| {
                let dev = (k as u64 % devices) as u32;
                lane(move |w| check_slot(w, dev, addr, &mask, seed))
            })
            .collect();
        s.batch(lanes)?;
        s.end_step();
    }

    let lanes: Vec<Lane<'_>> = slots
        .iter()
        .enumerate()
        .map(|(k, &addr)| {
            lane(move |w| {
                w.munmap(addr, len)
                    .or_fail(|| format!("final munmap of buffer {k}"))
            })
        })
        .collect();
    s.batch(lanes)?;
    let left = s.world.ranges().or_fail(|| "counting ranges".into())?;
    if left != 0 {
        return Err(Failure(format!(
            "{left} SVM ranges survive after every buffer was unmapped"
        )));
    }
    s.note(format!(
        "{holes_punched} holes punched in {SLOTS} buffers of {len} bytes; no range over unmapped memory, none left at the end"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_leave_pages_and_runs_partition_the_buffer() {
        let mut rng = Rng::new(3);
        for pages in [1u64, 2, 16, 512, 1024] {
            for step in 0..6 {
                let m = holes(&mut rng, pages, step);
                assert_eq!(m.len() as u64, pages);
                let (h, k) = (runs(&m, true), runs(&m, false));
                assert!(
                    !k.is_empty(),
                    "pages={pages} step={step}: something stays mapped"
                );
                let total: u64 = h.iter().chain(&k).map(|r| r.1).sum();
                assert_eq!(total, pages);
            }
        }
        assert_eq!(runs(&[true, true, false, true], true), vec![(0, 2), (3, 1)]);
    }
}
