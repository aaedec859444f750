//! `random`: seeded random page touches by the GPUs and the CPU over one buffer — the access
//! pattern of graph analytics or hash-table lookups that defeats any prefetcher.
//!
//! - One `--size` buffer, 2 MiB-aligned, initialized by the CPU. Its first quarter is advised
//!   `preferred=ram` (as an application does for data the host keeps using): GPU faults there
//!   map system memory over DMA and never migrate; the rest follows the default policy and
//!   migrates to the faulting GPU's VRAM.
//! - Each step makes [`TOUCHES_PER_STEP`] touches in [`BATCHES_PER_STEP`] batches. A touch picks
//!   a page uniformly, the CPU ([`CPU_PERCENT`]) or a random GPU, and a read or a write
//!   ([`WRITE_PERCENT`]); a write stores a fresh `seed:` pattern over the page. Every read checks
//!   the page's latest pattern, so a lost write or a stale mapping shows as corruption.
//! - With `--threads N` the touches go to `N` lanes by page number (touches of one page stay in
//!   order); different pages of one 2 MiB range still race, which is the point.
//! - At the end the CPU reads the whole buffer back and checks every page.

use super::session::{cpu_check, derive_seed, lane, pieces, Checked, Lane, OrFail, Session};
use crate::driver::Preferred;
use crate::mem::PAGE;

/// Touches per step.
pub const TOUCHES_PER_STEP: u64 = 128;
/// Batches per step.
const BATCHES_PER_STEP: u64 = 4;
/// Share of touches made by the CPU, percent.
pub const CPU_PERCENT: u64 = 25;
/// Share of touches that write, percent.
pub const WRITE_PERCENT: u64 = 40;

/// One page touch.
#[derive(Clone, Copy, Debug)]
struct Touch {
    addr: u64,
    /// `None` for the CPU.
    gpu: Option<u32>,
    write: bool,
    /// The pattern written, or the one a read must find.
    seed: u64,
}

/// Runs the touch: a write stores the pattern, a read checks it.
fn touch(w: &crate::world::World, t: Touch) -> Checked {
    use super::session::{cpu_fill, gpu_check, gpu_fill};
    match (t.gpu, t.write) {
        (None, true) => cpu_fill(w, t.addr, PAGE, t.seed),
        (None, false) => cpu_check(w, t.addr, PAGE, t.seed),
        (Some(d), true) => gpu_fill(w, d, t.addr, PAGE, t.seed),
        (Some(d), false) => gpu_check(w, d, t.addr, PAGE, t.seed),
    }
}

/// Runs the workload.
pub(super) fn run(s: &mut Session) -> Checked {
    let len = s.params.size;
    let buf = s.mmap("buf", len, 2 << 20)?;
    let host = (len / 4 / PAGE) * PAGE;
    if host > 0 {
        s.world
            .advise(buf, host, Some(Preferred::Ram), None)
            .or_fail(|| "advise preferred=ram".into())?;
        s.track("buf: preferred=ram", buf, host);
    }
    s.track("buf: default policy", buf + host, len - host);
    let pages = len / PAGE;
    let initial = derive_seed(s.params.seed, &[0]);
    let mut seeds = vec![initial; pages as usize];

    let init: Vec<Lane<'_>> = pieces(len, 2 << 20)
        .into_iter()
        .map(|(off, n)| lane(move |w| super::session::cpu_fill(w, buf + off, n, initial)))
        .collect();
    s.batch(init)?;

    let lanes = u64::from(s.params.threads.max(1));
    let devices = u64::from(s.devices());
    let (mut reads, mut writes, mut by_cpu) = (0u64, 0u64, 0u64);
    for step in 0..s.params.steps {
        for b in 0..BATCHES_PER_STEP {
            let mut plan: Vec<Vec<Touch>> = vec![Vec::new(); lanes as usize];
            for t in 0..TOUCHES_PER_STEP / BATCHES_PER_STEP {
                let page = s.rng.below(pages);
                let gpu = if s.rng.percent(CPU_PERCENT) {
                    None
                } else {
                    Some(s.rng.below(devices) as u32)
                };
                let write = s.rng.percent(WRITE_PERCENT);
                if write {
                    seeds[page as usize] = derive_seed(s.params.seed, &[1, step, b, t]);
                }
                let seed = seeds[page as usize];
                if let Some(l) = plan.get_mut((page % lanes) as usize) {
                    l.push(Touch {
                        addr: buf + page * PAGE,
                        gpu,
                        write,
                        seed,
                    });
                }
                reads += u64::from(!write);
                writes += u64::from(write);
                by_cpu += u64::from(gpu.is_none());
            }
            let batch: Vec<Lane<'_>> = plan
                .into_iter()
                .map(|touches| lane(move |w| touches.into_iter().try_for_each(|t| touch(w, t))))
                .collect();
            s.batch(batch)?;
        }
        s.end_step();
    }

    // Every page holds its last pattern.
    let check: Vec<Lane<'_>> = pieces(len, 2 << 20)
        .into_iter()
        .map(|(off, n)| {
            let first = (off / PAGE) as usize;
            let slice: Vec<u64> = seeds[first..first + (n / PAGE) as usize].to_vec();
            lane(move |w| {
                slice
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, &sd)| cpu_check(w, buf + off + i as u64 * PAGE, PAGE, sd))
            })
        })
        .collect();
    s.batch(check)?;
    s.note(format!(
        "{} touches ({reads} reads, {writes} writes; {by_cpu} by the CPU), every page verified at the end",
        reads + writes
    ));
    Ok(())
}
