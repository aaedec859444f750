//! gpusvm-sim: a deterministic userspace simulator of GPU shared virtual memory, built on
//! `gpusvm-core`.
//!
//! The simulated world (modelled on the kernel's HMM test driver `lib/test_hmm.c` and on the
//! Xe driver's policy) has:
//!
//! - CPU processes with real memory: VMAs and page tables ([`mm`]), physical frames with bytes
//!   and reverse maps ([`mem`]), CPU faults, copy-on-write, `mremap`, `fork`, MMU interval
//!   notifiers with the kernel's sequence protocol, `hmm_range_fault` and `migrate_vma`;
//! - GPUs ([`gpu`]): VRAM with TTM-like eviction, DMA mappers with tracked IOVAs ([`dma`]), a
//!   copy engine, GPU page tables;
//! - a reference Xe-style driver ([`driver`]) on the core;
//! - a virtual clock and fault injection ([`inject`]), and a deterministic scheduler for
//!   concurrent scenarios ([`sched`]);
//! - an integrity oracle ([`oracle`]) and a leak checker ([`world::World::teardown`]).
//!
//! [`run`] executes scenario files ([`scenario`]); [`workload`] runs synthetic workloads; the
//! `gpusvm-sim` binary is the CLI over both.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod dma;
pub mod driver;
pub mod gpu;
pub mod inject;
pub mod mem;
pub mod mm;
pub mod oracle;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sched;
pub mod shared;
pub mod stats;
pub mod svg;
pub mod sweep;
pub mod workload;
pub mod world;
