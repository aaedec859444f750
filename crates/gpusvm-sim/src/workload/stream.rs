//! `stream`: the STREAM triad `a = b + k·c` (McCalpin's STREAM, as GPU ports run it on shared
//! virtual memory).
//!
//! 1. Three arrays `a`, `b`, `c` of `--size / 3` bytes each, 2 MiB-aligned, are written by the
//!    CPU (`seed:` patterns), so they start populated in RAM.
//! 2. `--steps` triad passes: pass `k` is a GPU kernel over 2 MiB slices; each slice reads
//!    `b` and `c` and writes `a[i] = b[i] + k·c[i]` (bytes, wrapping). Slice `i` runs on GPU
//!    `i mod --devices`, the usual static data-parallel split, so each device keeps its slices.
//!    The first pass faults every slice in and migrates it to VRAM; later passes run on
//!    resident memory. Each pass is four batches, so the residency map shows the wavefront.
//! 3. The CPU reads everything back and checks `a` holds the last pass's triad and `b`, `c`
//!    their initial patterns (the CPU faults migrate the arrays back to RAM).

use super::session::{
    check_bytes, cpu_check, cpu_fill, derive_seed, lane, pieces, Checked, Lane, OrFail, Session,
};
use crate::mem::PAGE;
use crate::scenario::pattern::seed_byte;

/// The GPU kernel's granularity: one 2 MiB range.
const SLICE: u64 = 2 << 20;
/// Batches per triad pass (the residency map's time resolution).
const BATCHES_PER_PASS: usize = 4;

/// The triad's byte: `b + k·c`, wrapping.
fn triad(b: u8, c: u8, k: u8) -> u8 {
    b.wrapping_add(k.wrapping_mul(c))
}

/// Runs the workload.
pub(super) fn run(s: &mut Session) -> Checked {
    let len = (s.params.size / 3 / PAGE).max(1) * PAGE;
    let a = s.mmap("a", len, SLICE)?;
    let b = s.mmap("b", len, SLICE)?;
    let c = s.mmap("c", len, SLICE)?;
    for (name, addr) in [("a", a), ("b", b), ("c", c)] {
        s.track(&format!("{name} (array)"), addr, len);
    }
    let seed = s.params.seed;
    let (seed_a, seed_b, seed_c) = (
        derive_seed(seed, &[0]),
        derive_seed(seed, &[1]),
        derive_seed(seed, &[2]),
    );
    let slices = pieces(len, SLICE);
    let devices = s.devices();

    // 1. The CPU initializes the arrays.
    let init: Vec<Lane<'_>> = slices
        .iter()
        .flat_map(|&(off, n)| {
            [(a, seed_a), (b, seed_b), (c, seed_c)]
                .map(|(base, sd)| lane(move |w| cpu_fill(w, base + off, n, sd)))
        })
        .collect();
    s.batch(init)?;

    // 2. The GPU runs the triad.
    let per_batch = slices.len().div_ceil(BATCHES_PER_PASS).max(1);
    let mut k = 0u8;
    for step in 1..=s.params.steps {
        k = step as u8; // The scalar wraps like the bytes do.
        for group in slices
            .iter()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(per_batch)
        {
            let lanes: Vec<Lane<'_>> = group
                .iter()
                .map(|&(i, &(off, n))| {
                    let dev = (i as u64 % u64::from(devices)) as u32;
                    lane(move |w| {
                        let mut bb = vec![0u8; n as usize];
                        let mut cc = vec![0u8; n as usize];
                        w.gpu_read(dev, b + off, &mut bb)
                            .or_fail(|| format!("triad pass {k}: GPU {dev} read of b+{off:#x}"))?;
                        w.gpu_read(dev, c + off, &mut cc)
                            .or_fail(|| format!("triad pass {k}: GPU {dev} read of c+{off:#x}"))?;
                        let aa: Vec<u8> =
                            bb.iter().zip(&cc).map(|(&x, &y)| triad(x, y, k)).collect();
                        w.gpu_write(dev, a + off, &aa)
                            .or_fail(|| format!("triad pass {k}: GPU {dev} write of a+{off:#x}"))
                    })
                })
                .collect();
            s.batch(lanes)?;
        }
        s.end_step();
    }

    // 3. The CPU reads the result back.
    let check: Vec<Lane<'_>> = slices
        .iter()
        .map(|&(off, n)| {
            lane(move |w| {
                let mut aa = vec![0u8; n as usize];
                let what = || format!("CPU read-back of a+{off:#x} after pass {k}");
                w.cpu_read(a + off, &mut aa).or_fail(what)?;
                check_bytes(
                    &aa,
                    a + off,
                    |addr| {
                        let i = addr - a;
                        triad(seed_byte(seed_b, b + i), seed_byte(seed_c, c + i), k)
                    },
                    what,
                )?;
                cpu_check(w, b + off, n, seed_b)?;
                cpu_check(w, c + off, n, seed_c)
            })
        })
        .collect();
    s.batch(check)?;
    s.note(format!(
        "triad: a = b + {k}*c verified by the CPU over {} arrays of {} bytes",
        3, len
    ));
    Ok(())
}
