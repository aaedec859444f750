//! `atomics`: CPU/GPU ping-pong on shared counters — work queues, reference counts and
//! completion flags that both sides update (IGT's `xe_exec_system_allocator` atomic tests).
//!
//! [`COUNTERS`] 64-bit counters live in one `--size` buffer (one per page while pages last,
//! then 64 bytes apart), so they share one SVM range: the range is the unit of migration, and
//! counters falsely share it. Each step is a round in which every counter gets:
//!
//! 1. a GPU atomic add of [`GPU_ADDS`] (`gpu_atomic`): atomics need device memory, so the range
//!    migrates to VRAM, where it stays for the atomic timeslice (`atomic_timeslice_ms`);
//! 2. a CPU read: the CPU faults on the device page and re-faults (virtual time passes) until
//!    the timeslice ends, then the range migrates back to RAM; the value must be exactly
//!    `round × (GPU_ADDS + 1) + GPU_ADDS`;
//! 3. a CPU increment (a plain read-modify-write: the counter is its lane's alone).
//!
//! Even rounds ping-pong at the finest grain — each counter goes GPU, CPU, before the next one —
//! so the range migrates both ways and the CPU waits out the timeslice once per counter. Odd
//! rounds are "kernel, then host pass": the GPU updates every counter (one migration), then the
//! CPU reads and increments every counter (one wait, one migration back); the residency map
//! shows these as VRAM stripes.
//!
//! Counter `i` uses GPU `i mod --devices`. With `--threads N` the counters' lanes interleave, so
//! GPU atomics and CPU accesses to one range race. After the last round every counter must be
//! exactly `--steps × (GPU_ADDS + 1)`.

use super::session::{lane, Checked, Failure, Lane, OrFail, Session};
use crate::mem::PAGE;
use crate::world::World;

/// Number of counters.
pub const COUNTERS: u64 = 16;
/// Atomic increments per GPU visit.
pub const GPU_ADDS: u64 = 8;
/// Spacing of counters sharing a page (a cache line).
const LINE: u64 = 64;

/// Reads counter `i` at `addr` and checks it holds `expected`.
fn read_counter(w: &World, i: u64, addr: u64, expected: u64, when: &str) -> Checked {
    let mut v = [0u8; 8];
    w.cpu_read(addr, &mut v)
        .or_fail(|| format!("CPU read of counter {i} {when}"))?;
    let found = u64::from_le_bytes(v);
    if found != expected {
        return Err(Failure(format!(
            "data corruption: counter {i} at {addr:#x} holds {found} {when}, expected {expected}"
        )));
    }
    Ok(())
}

/// Runs the workload.
pub(super) fn run(s: &mut Session) -> Checked {
    let len = s.params.size;
    // Aligned to its (power-of-two) size up to 2M, so it is a single range.
    let align = len.next_power_of_two().clamp(PAGE, 2 << 20);
    let buf = s.mmap("counters", len, align)?;
    s.track("counters", buf, len);
    let pages = len / PAGE;
    let addr_of = |i: u64| buf + (i % pages) * PAGE + (i / pages) * LINE;
    let devices = u64::from(s.devices());

    s.run(|w| {
        w.cpu_write(buf, &vec![0u8; len as usize])
            .or_fail(|| "CPU zeroing of the counters".into())
    })?;

    for round in 0..s.params.steps {
        // What counter `i` holds after this round's GPU adds.
        let after_gpu = round * (GPU_ADDS + 1) + GPU_ADDS;
        let gpu_add = move |w: &World, i: u64| {
            let dev = (i % devices) as u32;
            w.gpu_atomic(dev, addr_of(i), GPU_ADDS)
                .or_fail(|| format!("GPU {dev} atomic add on counter {i} in round {round}"))
        };
        let cpu_increment = move |w: &World, i: u64| {
            let addr = addr_of(i);
            read_counter(w, i, addr, after_gpu, &format!("in round {round}"))?;
            w.cpu_write(addr, &(after_gpu + 1).to_le_bytes())
                .or_fail(|| format!("CPU increment of counter {i} in round {round}"))
        };
        if round % 2 == 0 {
            // Fine-grained ping-pong: each counter goes GPU then CPU before the next.
            let lanes: Vec<Lane<'_>> = (0..COUNTERS)
                .map(|i| {
                    lane(move |w| {
                        gpu_add(w, i)?;
                        cpu_increment(w, i)
                    })
                })
                .collect();
            s.batch(lanes)?;
        } else {
            // Kernel, then host pass: the GPU updates every counter, then the CPU does.
            let lanes: Vec<Lane<'_>> = (0..COUNTERS)
                .map(|i| lane(move |w| gpu_add(w, i)))
                .collect();
            s.batch(lanes)?;
            let lanes: Vec<Lane<'_>> = (0..COUNTERS)
                .map(|i| lane(move |w| cpu_increment(w, i)))
                .collect();
            s.batch(lanes)?;
        }
        s.end_step();
    }

    let expected = s.params.steps * (GPU_ADDS + 1);
    let lanes: Vec<Lane<'_>> = (0..COUNTERS)
        .map(|i| {
            let addr = addr_of(i);
            lane(move |w| read_counter(w, i, addr, expected, "at the end"))
        })
        .collect();
    s.batch(lanes)?;
    s.note(format!(
        "counters: all {COUNTERS} exactly {expected} = {} rounds x ({GPU_ADDS} GPU atomic adds + 1 CPU increment)",
        s.params.steps
    ));
    Ok(())
}
