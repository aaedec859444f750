//! Larger-scale concurrency: racy scenarios under many seeds of the deterministic scheduler.
//!
//! Each template races GPU faults, CPU faults, invalidations (munmap, mprotect, madvise,
//! mremap), migrations, eviction and fork against each other in a `concurrent` block. The
//! scheduler interleaves the simulated threads at every backend call; each seed gives one
//! reproducible interleaving. For every seed: every statement's outcome is one of the listed
//! alternatives, every read matches the integrity oracle, no DMA misuse, nothing leaks.
//!
//! `GPUSVM_SEEDS` sets the number of seeds per template (CI runs more in release mode).

use gpusvm_sim::run::{run_scenario, summary, RunOptions};
use gpusvm_sim::scenario::parse;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "gpu-write-vs-partial-munmap",
        "config vram=64M range_split=SPLIT
mmap A size=2M align=2M
cpu write A fill=9
concurrent seed=SEED {
  gpu write A len=2M fill=seed:4 -> ok|EFAULT|ENOENT
  munmap A+1M len=1M
}
gpu read A len=1M
cpu read A len=4K
",
    ),
    (
        "gpu-read-vs-mprotect-and-cpu-write",
        "config vram=64M range_split=SPLIT
mmap A size=512K align=64K
cpu write A fill=seed:1
concurrent seed=SEED {
  gpu read A
  mprotect A+64K len=64K prot=r
  cpu write A+256K len=64K fill=seed:2
}
gpu read A
cpu read A
",
    ),
    (
        "prefetch-vs-cpu-touch-vs-evict",
        "config vram=4M range_split=SPLIT
mmap A size=4M align=2M
mmap B size=2M align=2M
cpu write A fill=seed:5
cpu write B fill=seed:6
concurrent seed=SEED {
  prefetch A to=vram -> ok|ENOMEM|EBUSY|EFAULT
  cpu read A+1M len=8K
  gpu write B fill=seed:7
  evict -> ok|EBUSY
}
cpu read A
gpu read B
",
    ),
    (
        "two-gpus-vs-dontneed",
        "config vram=16M devices=2 range_split=SPLIT
mmap A size=1M align=1M
cpu write A fill=seed:8
concurrent seed=SEED {
  gpu write A len=512K fill=seed:9 dev=0
  gpu read A+512K dev=1
  madvise A+256K len=256K dontneed
}
gpu read A dev=1
cpu read A
",
    ),
    (
        "atomics-vs-cpu-reads",
        "config vram=16M atomic_timeslice_ms=5 range_split=SPLIT
mmap A size=64K align=64K
cpu write A fill=0
concurrent seed=SEED {
  gpu atomic A count=10
  cpu read A+8K len=8
  gpu atomic A+4K count=3 dev=0
}
cpu read A len=8 expect=u64:10
cpu read A+4K len=8 expect=u64:3
",
    ),
    (
        "fork-and-mremap-vs-gpu",
        "config vram=16M range_split=SPLIT
mmap A size=1M align=1M
mmap B size=256K align=64K
cpu write A fill=seed:11
cpu write B fill=seed:12
gpu read A
concurrent seed=SEED {
  fork C
  gpu write A len=256K fill=seed:13
  mremap B new=B2 -> ok
}
gpu read A
cpu read B2
process C
cpu read A+512K len=4K expect=seed:11
exit
",
    ),
];

fn seeds() -> u64 {
    std::env::var("GPUSVM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 6 } else { 60 })
}

#[test]
fn racy_scenarios_hold_their_invariants_under_many_seeds() {
    let mut results = Vec::new();
    for (name, template) in TEMPLATES {
        for split in ["on", "off"] {
            for seed in 1..=seeds() {
                let text = template
                    .replace("SEED", &seed.to_string())
                    .replace("SPLIT", split);
                let file = format!("{name} (range_split={split}, seed {seed})");
                let sc = parse(&file, &text).unwrap_or_else(|e| panic!("{e}"));
                let r = run_scenario(&file, &sc, &RunOptions::default());
                if !r.passed {
                    results.push(r);
                }
            }
        }
    }
    assert!(results.is_empty(), "\n{}", summary(&results));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (_, template) = TEMPLATES[0];
    let text = template.replace("SEED", "42").replace("SPLIT", "on");
    let sc = parse("determinism", &text).unwrap();
    let a = run_scenario("determinism", &sc, &RunOptions::default());
    let b = run_scenario("determinism", &sc, &RunOptions::default());
    assert!(a.passed && b.passed);
    assert_eq!(a.backend_calls, b.backend_calls);
    // Everything but the wall-clock measurement is identical.
    let strip = |r: &gpusvm_sim::run::ScenarioResult| {
        r.stats
            .iter()
            .map(|(p, s)| {
                let mut s = s.clone();
                s.core_ns = 0;
                (p.clone(), s)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
}
