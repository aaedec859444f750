//! `oversubscribe`: a working set larger than device memory, as in out-of-core training or
//! Xe's IGT `evict-malloc` tests.
//!
//! - [`BUFFERS`] buffers of `--size / 4` bytes each (more than `--vram` in total), initialized
//!   by the CPU.
//! - Each step is a GPU pass over every buffer in turn: each 2 MiB slice is read (and checked)
//!   and rewritten with a new pattern. On odd steps each buffer is prefetched to VRAM before its
//!   pass, as an application using `cudaMemPrefetchAsync`-style hints does; on even steps the
//!   pass is demand-faulted. Buffer `i` uses GPU `(i + step) mod --devices`, so with several GPUs
//!   buffers also move between devices. Device memory runs out during every pass, so the oldest
//!   allocations are evicted to RAM (TTM-style LRU) to make room.
//! - After each pass the CPU peeks at one page of each buffer (a host-side check that migrates
//!   that range back).
//! - At the end the CPU reads everything back and checks the last pattern of every slice.

use super::session::{
    cpu_check, derive_seed, gpu_check, gpu_fill, lane, pieces, Checked, Lane, OrFail, Session,
};
use super::{size_arg, Params};
use crate::mem::PAGE;

/// Number of buffers.
pub const BUFFERS: u64 = 4;
/// The GPU pass's granularity.
const SLICE: u64 = 2 << 20;
/// Batches per buffer pass (the residency map's time resolution).
const BATCHES_PER_BUFFER: usize = 2;

/// The data must not fit in one device's memory.
pub(super) fn validate(p: &Params) -> Result<(), String> {
    if p.size <= p.vram {
        return Err(format!(
            "--size ({}) must exceed --vram ({}) to oversubscribe device memory",
            size_arg(p.size),
            size_arg(p.vram)
        ));
    }
    Ok(())
}

/// Runs the workload.
pub(super) fn run(s: &mut Session) -> Checked {
    let len = s.params.size.div_ceil(BUFFERS).div_ceil(PAGE) * PAGE;
    let mut bufs = Vec::new();
    for i in 0..BUFFERS {
        let addr = s.mmap(&format!("buf{i}"), len, SLICE)?;
        s.track(&format!("buffer {i}"), addr, len);
        bufs.push(addr);
    }
    let slices = pieces(len, SLICE);
    let seed = s.params.seed;
    // The pattern each slice of each buffer holds now.
    let mut current: Vec<Vec<u64>> = (0..BUFFERS)
        .map(|i| vec![derive_seed(seed, &[0, i]); slices.len()])
        .collect();

    let init: Vec<Lane<'_>> = bufs
        .iter()
        .zip(&current)
        .flat_map(|(&buf, seeds)| {
            slices
                .iter()
                .zip(seeds.clone())
                .map(move |(&(off, n), sd)| {
                    lane(move |w| super::session::cpu_fill(w, buf + off, n, sd))
                })
        })
        .collect();
    s.batch(init)?;

    let devices = u64::from(s.devices());
    let per_batch = slices.len().div_ceil(BATCHES_PER_BUFFER).max(1);
    let mut prefetches = 0u64;
    for step in 0..s.params.steps {
        for (i, &buf) in bufs.iter().enumerate() {
            let dev = ((i as u64 + step) % devices) as u32;
            if step % 2 == 1 {
                s.run(|w| {
                    w.prefetch(dev, buf, len, true)
                        .or_fail(|| format!("prefetch of buffer {i} to VRAM of GPU {dev}"))
                })?;
                prefetches += 1;
            }
            let seeds = &mut current[i];
            let indexed: Vec<usize> = (0..slices.len()).collect();
            for group in indexed.chunks(per_batch) {
                let lanes: Vec<Lane<'_>> = group
                    .iter()
                    .map(|&k| {
                        let (off, n) = slices[k];
                        let old = seeds[k];
                        let new = derive_seed(seed, &[1, step, i as u64, k as u64]);
                        seeds[k] = new;
                        lane(move |w| {
                            gpu_check(w, dev, buf + off, n, old)?;
                            gpu_fill(w, dev, buf + off, n, new)
                        })
                    })
                    .collect();
                s.batch(lanes)?;
            }
        }
        // The host peeks at one page of each buffer.
        let peeks: Vec<Lane<'_>> = bufs
            .iter()
            .zip(&current)
            .map(|(&buf, seeds)| {
                let k = s.rng.below(slices.len() as u64) as usize;
                let (off, _) = slices[k];
                let sd = seeds[k];
                lane(move |w| cpu_check(w, buf + off, PAGE.min(len - off), sd))
            })
            .collect();
        s.batch(peeks)?;
        s.end_step();
    }

    let check: Vec<Lane<'_>> = bufs
        .iter()
        .zip(&current)
        .flat_map(|(&buf, seeds)| {
            slices
                .iter()
                .zip(seeds.clone())
                .map(move |(&(off, n), sd)| lane(move |w| cpu_check(w, buf + off, n, sd)))
        })
        .collect();
    s.batch(check)?;
    s.note(format!(
        "{BUFFERS} buffers of {} = {} for {} of VRAM per GPU ({:.1}x); {prefetches} prefetches; every byte verified at the end",
        size_arg(len),
        size_arg(len * BUFFERS),
        size_arg(s.params.vram),
        (len * BUFFERS) as f64 / s.params.vram as f64
    ));
    Ok(())
}
