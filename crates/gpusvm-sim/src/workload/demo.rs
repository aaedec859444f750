//! The no-argument demo: a narrated mini-run showing what shared virtual memory does.
//!
//! One process and one GPU with 8 MiB of VRAM go through the life of SVM memory: the CPU writes
//! a buffer; the GPU faults it in and the driver migrates it to VRAM; the CPU touches it back;
//! CPU and GPU play atomic ping-pong on a counter; part of the buffer is unmapped under the GPU;
//! more data than VRAM holds forces evictions; and the teardown checks nothing leaked. Each step
//! prints what was done and what the statistics say happened (not what was expected to happen),
//! then the demo prints the full report. It runs in well under a second.

use super::session::{
    cpu_check, cpu_fill, derive_seed, expect_segv, gpu_check, gpu_fill, Checked, Collect, Failure,
    OrFail, Session,
};
use super::{Params, WorkloadReport};
use crate::mem::PAGE;
use crate::report::fmt_bytes;
use crate::stats::ProcStats;
use crate::world::{Residency, World};

const K: u64 = 1 << 10;
const M: u64 = 1 << 20;

/// The statistics of every process, summed.
fn totals(w: &World) -> ProcStats {
    let mut t = ProcStats::default();
    for (_, s) in w.all_stats() {
        t.add(&s);
    }
    t
}

/// `n` of something, singular or plural: `count(1, "fault", "faults")`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What changed between two snapshots, in words (the counters that moved).
fn describe(before: &ProcStats, after: &ProcStats) -> String {
    let d = |a: u64, b: u64| b.saturating_sub(a);
    let counters = [
        (
            d(before.gpu_faults, after.gpu_faults),
            "GPU fault",
            "GPU faults",
        ),
        (
            d(before.cpu_faults, after.cpu_faults),
            "CPU fault",
            "CPU faults",
        ),
        (
            d(before.cpu_device_faults, after.cpu_device_faults),
            "of them on a device page",
            "of them on device pages",
        ),
        (
            d(before.ranges_created, after.ranges_created),
            "range created",
            "ranges created",
        ),
    ];
    let mut parts: Vec<String> = counters
        .iter()
        .filter(|c| c.0 > 0)
        .map(|&(n, one, many)| count(n, one, many))
        .collect();
    for (n, bytes, dir) in [
        (
            d(before.migrations_to_vram, after.migrations_to_vram),
            d(before.bytes_to_vram, after.bytes_to_vram),
            "VRAM",
        ),
        (
            d(before.migrations_to_ram, after.migrations_to_ram),
            d(before.bytes_to_ram, after.bytes_to_ram),
            "RAM",
        ),
    ] {
        if n > 0 {
            parts.push(format!(
                "{} to {dir} ({})",
                count(n, "migration", "migrations"),
                fmt_bytes(bytes)
            ));
        }
    }
    for (n, one, many) in [
        (
            d(before.evictions, after.evictions),
            "eviction",
            "evictions",
        ),
        (
            d(before.tlb_invalidations, after.tlb_invalidations),
            "GPU TLB invalidation",
            "GPU TLB invalidations",
        ),
    ] {
        if n > 0 {
            parts.push(count(n, one, many));
        }
    }
    if parts.is_empty() {
        "nothing to do for the SVM machinery".into()
    } else {
        parts.join(", ")
    }
}

/// Where a span is, in words.
fn where_is(w: &World, start: u64, len: u64) -> String {
    match w.residency(start, len, None) {
        Ok(Residency::Vram) => "in VRAM".into(),
        Ok(Residency::Ram) => "in RAM".into(),
        Ok(Residency::Mixed) => "partly in RAM, partly in VRAM".into(),
        Ok(Residency::None) => "not populated".into(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The ranges of the current process in `[start, start + len)`, in words: "2 x 2 MiB".
fn ranges_in(w: &World, start: u64, len: u64) -> String {
    let mut sizes = std::collections::BTreeMap::new();
    let mut addr = start;
    while addr < start + len {
        match w.chunk(addr) {
            Ok(Some(size)) => {
                *sizes.entry(size).or_insert(0u64) += 1;
                addr = addr - addr % size + size;
            }
            _ => addr += PAGE,
        }
    }
    if sizes.is_empty() {
        return "none".into();
    }
    sizes
        .iter()
        .rev()
        .map(|(size, n)| format!("{n} x {}", fmt_bytes(*size)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Narrates one step: runs it as a batch and prints its effect.
fn step(s: &mut Session, title: &str, body: impl FnOnce(&World) -> Checked<String>) -> Checked {
    s.say(title);
    let before = totals(&s.world);
    let detail = s.run(body)?;
    let after = totals(&s.world);
    s.say(&format!("   -> {}", describe(&before, &after)));
    if !detail.is_empty() {
        s.say(&format!("   -> {detail}"));
    }
    s.end_step();
    Ok(())
}

/// The demo's steps.
fn script(s: &mut Session) -> Checked {
    let seed = s.params.seed;
    let a_len = 4 * M;
    let a = s.mmap("A", a_len, 2 * M)?;
    let (cpu_seed, gpu_seed) = (derive_seed(seed, &[1]), derive_seed(seed, &[2]));

    step(
        s,
        "1. The CPU writes a 4 MiB buffer A (malloc + memset).",
        |w| {
            cpu_fill(w, a, a_len, cpu_seed)?;
            Ok(format!("A is {}", where_is(w, a, a_len)))
        },
    )?;
    step(
        s,
        "2. The GPU reads A: it faults, the driver creates SVM ranges and migrates them to VRAM.",
        |w| {
            gpu_check(w, 0, a, a_len, cpu_seed)?;
            Ok(format!(
                "the GPU read the CPU's bytes; A is {}; its ranges: {}",
                where_is(w, a, a_len),
                ranges_in(w, a, a_len)
            ))
        },
    )?;
    step(
        s,
        "3. The GPU writes A: its mappings are valid now, so no fault is needed.",
        |w| {
            gpu_fill(w, 0, a, a_len, gpu_seed)?;
            Ok(String::new())
        },
    )?;
    step(
        s,
        "4. The CPU reads the first page of A: a CPU fault on a device page brings its range back.",
        |w| {
            cpu_check(w, a, PAGE, gpu_seed)?;
            Ok(format!(
                "the CPU sees the GPU's bytes; A is {} (first 2 MiB {}, last 2 MiB {})",
                where_is(w, a, a_len),
                where_is(w, a, 2 * M),
                where_is(w, a + 2 * M, 2 * M)
            ))
        },
    )?;

    let counter_len = 64 * K;
    let counter = s.mmap("counter", counter_len, 64 * K)?;
    let clock_before = gpusvm_core::Clock::now_ms(&s.world.shared.clock);
    step(
        s,
        "5. Atomic ping-pong on a counter: the GPU adds 100 atomically (device memory only), the \
CPU reads and increments it; three rounds.",
        |w| {
            w.cpu_write(counter, &[0u8; 8])
                .or_fail(|| "CPU write of the counter".into())?;
            for round in 0..3u64 {
                w.gpu_atomic(0, counter, 100)
                    .or_fail(|| "GPU atomic add".into())?;
                let mut v = [0u8; 8];
                w.cpu_read(counter, &mut v)
                    .or_fail(|| "CPU read of the counter".into())?;
                let found = u64::from_le_bytes(v);
                let expected = round * 101 + 100;
                if found != expected {
                    return Err(Failure(format!(
                        "data corruption: the counter holds {found}, expected {expected}"
                    )));
                }
                w.cpu_write(counter, &(found + 1).to_le_bytes())
                    .or_fail(|| "CPU write of the counter".into())?;
            }
            let mut v = [0u8; 8];
            w.cpu_read(counter, &mut v)
                .or_fail(|| "CPU read of the counter".into())?;
            let clock = gpusvm_core::Clock::now_ms(&w.shared.clock);
            Ok(format!(
                "counter = {} (exact); the CPU waited out the 5 ms atomic timeslice after each GPU \
visit ({} ms of virtual time in all)",
                u64::from_le_bytes(v),
                clock.saturating_sub(clock_before)
            ))
        },
    )?;

    step(
        s,
        "6. Partial munmap: the middle 2 MiB of A go away, across both of its ranges.",
        |w| {
            w.munmap(a + M, 2 * M).or_fail(|| "munmap of A+1M".into())?;
            gpu_check(w, 0, a, M, gpu_seed)?;
            gpu_check(w, 0, a + 3 * M, M, gpu_seed)?;
            let mut b = [0u8; 8];
            expect_segv(w.cpu_read(a + M, &mut b), || "CPU read in the hole".into())?;
            Ok(format!(
                "the GPU still reads both ends of A; a CPU read in the hole gets SEGV; A's ranges \
now: {}",
                ranges_in(w, a, a_len)
            ))
        },
    )?;

    let buffers: Vec<(u64, u64)> = ["B", "C", "D"]
        .iter()
        .enumerate()
        .map(|(i, n)| Ok((s.mmap(n, 4 * M, 2 * M)?, derive_seed(seed, &[3, i as u64]))))
        .collect::<Checked<_>>()?;
    step(
        s,
        "7. Oversubscription: the GPU writes three more 4 MiB buffers (14 MiB in use, 8 MiB of \
VRAM).",
        |w| {
            for &(b, sd) in &buffers {
                gpu_fill(w, 0, b, 4 * M, sd)?;
            }
            for &(b, sd) in &buffers {
                cpu_check(w, b, 4 * M, sd)?;
            }
            cpu_check(w, a, M, gpu_seed)?;
            cpu_check(w, a + 3 * M, M, gpu_seed)?;
            Ok("the oldest VRAM allocations were evicted to RAM; the CPU checked every byte: intact"
                .into())
        },
    )?;
    Ok(())
}

/// Runs the demo, printing as it goes; returns the report.
///
/// # Errors
///
/// The simulator refused the demo's configuration (a bug).
pub(super) fn run() -> Result<WorkloadReport, String> {
    let params = Params {
        size: 18 * M,
        vram: 8 * M,
        devices: 1,
        threads: 1,
        seed: 1,
        steps: 7,
    };
    let collect = Collect {
        narrate: true,
        ..Collect::default()
    };
    let mut s = Session::new("demo", &params, collect)?;
    println!(
        "gpusvm-sim demo: one process, one GPU with {} of VRAM; SVM ranges of 2 MiB, 64 KiB or \
4 KiB.\nEvery read is checked against a shadow copy of memory; at the end nothing may leak.\n",
        fmt_bytes(params.vram)
    );
    let result = script(&mut s);
    if let Err(f) = &result {
        println!("   !! {f}");
    }
    let report = s.finish(result).report;
    println!("8. Teardown: every process exits; the leak checker looks for anything still held.");
    let leaks: Vec<&String> = report
        .failures
        .iter()
        .filter(|f| f.starts_with("leak"))
        .collect();
    if leaks.is_empty() {
        println!("   -> nothing: no DMA mapping, VRAM, range, notifier, page or reference left");
    } else {
        for l in leaks {
            println!("   !! {l}");
        }
    }
    Ok(report)
}
