//! `multiproc`: several processes sharing the GPUs — a server that forks workers, plus an
//! unrelated client — each with its own GPU VM.
//!
//! Set-up: the parent `p0` maps a `MAP_SHARED` buffer and a private one (a quarter of `--size`
//! each), fills both, and lets the GPU fault the private one into VRAM; it then forks `child1`
//! and `child2`, which inherit the shared buffer and a copy-on-write view of the private one —
//! device pages included. An unrelated process `peer` (created by switching to it) maps and
//! fills its own private buffer.
//!
//! Each step, every live process in turn (a process switch) does, in 2 MiB lanes:
//! - GPU reads of its private buffer, checked against what that process last wrote there (for a
//!   child, initially the parent's data), then GPU writes of a new pattern — breaking
//!   copy-on-write in the children — and, on odd steps, a CPU read of the first page of each
//!   slice (which brings the slice back to RAM);
//! - for the sharers (`p0` and the children): a GPU write of its own slice of the shared buffer.
//!
//! Then `p0`'s CPU reads every sharer's slice of the shared buffer and checks it sees their
//! last writes (MAP_SHARED memory stays in RAM: it is not anonymous, so it is never migrated).
//! Halfway through, `child2` exits while its GPU mappings are live. At the end every live
//! process checks its private buffer and `p0` the shared one.
//!
//! Process `i` (in the order above) uses GPU `i mod --devices`.

use std::collections::BTreeMap;

use super::session::{
    cpu_check, cpu_fill, derive_seed, gpu_check, gpu_fill, lane, pieces, Checked, Lane, OrFail,
    Session,
};
use crate::mem::PAGE;
use crate::mm::MapKind;

/// The GPU's slice granularity.
const SLICE: u64 = 2 << 20;
/// The processes, in the order they take turns.
const PROCESSES: [&str; 4] = ["p0", "child1", "child2", "peer"];
/// The processes mapping the shared buffer.
const SHARERS: [&str; 3] = ["p0", "child1", "child2"];
/// The child that exits halfway.
const LEAVER: &str = "child2";

/// Runs the workload.
pub(super) fn run(s: &mut Session) -> Checked {
    let len = (s.params.size / 4 / PAGE).max(1) * PAGE;
    let seed = s.params.seed;
    let devices = u64::from(s.devices());
    let slice_len = (len / SHARERS.len() as u64 / PAGE).max(1) * PAGE;

    // Mappings first (the residency map's tracks need their addresses).
    let shared = s.mmap_kind("shared", len, SLICE, MapKind::Shared)?;
    let private = s.mmap("private", len, SLICE)?;
    switch(s, "peer")?;
    let own = s.mmap("private", len, SLICE)?;
    switch(s, "p0")?;
    s.track("p0: shared (MAP_SHARED)", shared, len);
    s.track("p0: private", private, len);
    // The children's tracks: same addresses, their own processes.
    for child in ["child1", "child2"] {
        s.track_process(&format!("{child}: private (COW)"), child, private, len);
    }
    s.track_process("peer: private", "peer", own, len);

    // The pattern each process's private buffer holds now.
    let mut private_seed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut shared_seed: BTreeMap<&str, u64> = BTreeMap::new();
    let initial = derive_seed(seed, &[0]);
    let shared_initial = derive_seed(seed, &[1]);
    private_seed.insert("p0", initial);
    for sharer in SHARERS {
        shared_seed.insert(sharer, shared_initial);
    }
    s.batch(vec![
        lane(move |w| cpu_fill(w, shared, len, shared_initial)),
        lane(move |w| cpu_fill(w, private, len, initial)),
    ])?;
    s.run(|w| gpu_check(w, 0, private, len, initial))?;
    for child in ["child1", "child2"] {
        s.run(|w| w.fork(child).or_fail(|| format!("fork of {child}")))?;
        private_seed.insert(child, initial);
    }
    switch(s, "peer")?;
    let peer_initial = derive_seed(seed, &[2]);
    s.run(|w| cpu_fill(w, own, len, peer_initial))?;
    private_seed.insert("peer", peer_initial);

    let slices = pieces(len, SLICE);
    let mut exited_at = None;
    for step in 0..s.params.steps {
        if step == s.params.steps / 2 && s.params.steps >= 2 {
            switch(s, LEAVER)?;
            s.run(|w| w.exit().or_fail(|| format!("exit of {LEAVER}")))?;
            private_seed.remove(LEAVER);
            exited_at = Some(step);
        }
        for (idx, name) in PROCESSES.iter().enumerate() {
            let Some(&old) = private_seed.get(name) else {
                continue;
            };
            switch(s, name)?;
            let dev = (idx as u64 % devices) as u32;
            let base = if *name == "peer" { own } else { private };
            let new = derive_seed(seed, &[3, step, idx as u64]);
            private_seed.insert(name, new);
            let host_checks = step % 2 == 1;
            let mut lanes: Vec<Lane<'_>> = slices
                .iter()
                .map(|&(off, n)| {
                    lane(move |w| {
                        gpu_check(w, dev, base + off, n, old)?;
                        gpu_fill(w, dev, base + off, n, new)?;
                        if host_checks {
                            cpu_check(w, base + off, PAGE.min(n), new)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            if let Some(k) = SHARERS.iter().position(|x| x == name) {
                let sd = derive_seed(seed, &[4, step, idx as u64]);
                shared_seed.insert(name, sd);
                let at = shared + k as u64 * slice_len;
                lanes.push(lane(move |w| gpu_fill(w, dev, at, slice_len, sd)));
            }
            s.batch(lanes)?;
        }
        // The parent sees every sharer's last write through the shared mapping.
        switch(s, "p0")?;
        let lanes: Vec<Lane<'_>> = SHARERS
            .iter()
            .enumerate()
            .filter_map(|(k, name)| {
                let sd = *shared_seed.get(name)?;
                let at = shared + k as u64 * slice_len;
                Some(lane(move |w| cpu_check(w, at, slice_len, sd)))
            })
            .collect();
        s.batch(lanes)?;
        s.end_step();
    }

    // Final checks, process by process.
    for name in PROCESSES {
        let Some(&sd) = private_seed.get(name) else {
            continue;
        };
        switch(s, name)?;
        let base = if name == "peer" { own } else { private };
        s.run(|w| cpu_check(w, base, len, sd))?;
    }
    switch(s, "p0")?;
    let exit = exited_at.map_or_else(String::new, |x| {
        format!(", {LEAVER} exited in step {}", x + 1)
    });
    s.note(format!(
        "{} processes (2 forked{exit}); every sharer's writes seen by p0 through MAP_SHARED memory",
        PROCESSES.len()
    ));
    Ok(())
}

/// Makes `name` the current process (between batches).
fn switch(s: &Session, name: &str) -> Checked {
    s.world
        .switch(name)
        .or_fail(|| format!("process switch to {name}"))
}
