//! Fuzz target `unmap_sequences`: random mm/CPU/GPU operation sequences on a small simulated
//! world.
//!
//! # Input layout
//!
//! Two set-up bytes ([`Setup`]: devices, `range_split`, owners, chunk sizes, VRAM size,
//! `migrate_min`, atomic timeslice, `check_pages_threshold`), then up to [`MAX_OPS`] operations,
//! each an opcode byte followed by a fixed number of argument bytes for that opcode ([`Op`]).
//! Decoding stops at the end of the input; a truncated last operation reads zeros.
//!
//! Operations name regions by *slot* (`r0`..`r3`, as the world's region names) and spans
//! relative to the region's current extent ([`SpanSel`], [`Access`]), so most inputs do
//! something meaningful whatever the addresses turn out to be. Each process is `p0`, a forked
//! child `cN` or a fresh process `nN`; at most [`MAX_PROCS`] live at once. An
//! [`Op::Concurrent`] marker runs the next two or three operations as simulated threads of a
//! `concurrent` block (the deterministic scheduler of `gpusvm_sim::sched`), so munmaps, faults,
//! migrations and evictions also race.
//!
//! # Oracle
//!
//! `Errno`, `Segv` and `Usage` (an operation on a slot that holds no region, a process that
//! exited) are legal outcomes in general: which errno an operation gets depends on what the
//! sequence did before. Two kinds of outcome are determined, and checked:
//!
//! - a sequential GPU read or write of memory the current process maps with that permission
//!   (every page, whatever the mapping kind, placement or VRAM pressure) must succeed, and one
//!   touching an unmapped page or lacking the permission must fail (liveness and permission);
//! - after every operation the world settles (the garbage collectors run) and the structural
//!   invariants of [`crate::invariants`] hold: ranges disjoint and inside VMAs, valid DMA
//!   entries reach the frames the CPU maps now, DMA accounting balanced.
//!
//! A finding — one of those, `OpError::Corruption`, `OpError::Sigbus` (no fault injection is
//! active, so a migration back to RAM must not fail), a DMA error or a leak at teardown —
//! panics with the operations executed so far printed as a runnable `.svm` scenario with the
//! outcomes observed (`gpusvm-sim run repro.svm` replays it). A panic in the simulator or the
//! core prints the same trace, up to the operation that panicked, from a panic hook.
//!
//! The seeds' traces are also committed as scenarios (`tests/scenarios/fuzz-seeds/`), with
//! every outcome recorded: replaying them checks the outcomes the oracle above cannot decide.

use std::fmt::Write as _;

use gpusvm_sim::config::SimConfig;
use gpusvm_sim::driver::{AtomicMode as DrvAtomic, Preferred as DrvPreferred};
use gpusvm_sim::mem::PAGE;
use gpusvm_sim::mm;
use gpusvm_sim::scenario::ast::{
    self, Address, AtomicMode, Errno, Expected, Fill, MapKind, Outcome, Placement, Preferred, Prot,
    Stmt, StmtKind,
};
use gpusvm_sim::scenario::pattern::fill_bytes;
use gpusvm_sim::sched;
use gpusvm_sim::world::{OpError, OpResult, Region, World};

use super::{Reader, Writer};

const K: u64 = 1024;
const M: u64 = 1024 * K;

/// At most this many operations are decoded from one input.
pub const MAX_OPS: usize = 64;
/// Region slots per process (`r0`..`r3`).
pub const SLOTS: u8 = 4;
/// At most this many live processes.
pub const MAX_PROCS: usize = 4;
/// Largest `mmap` in pages (4 MiB).
pub const MAX_REGION_PAGES: u64 = 1024;
/// Largest size `mremap` grows a region to, in pages (16 MiB): repeated doubling would
/// otherwise reach gigabytes, which a prefetch then populates page by page.
pub const MAX_REMAP_PAGES: u64 = 4096;
/// Largest CPU or GPU access in pages (64 KiB): the oracle checks every byte, which is slow
/// under the fuzzer's instrumentation, and a few pages already cross range boundaries.
pub const MAX_ACCESS_PAGES: u64 = 16;

const CHUNK_SETS: [&[u64]; 4] = [
    &[2 * M, 64 * K, 4 * K],
    &[64 * K, 4 * K],
    &[2 * M, 4 * K],
    &[4 * K],
];
const VRAM: [u64; 4] = [8 * M, 4 * M, 2 * M, 16 * M];
const MIGRATE_MIN: [u64; 4] = [64 * K, 4 * K, 2 * M, M];
const TIMESLICE_MS: [u64; 4] = [5, 0, 1, 50];
const PAGE_CHECK: [u64; 4] = [64 * K, 0, 2 * M, 4 * K];

/// The world's parameters, from the first two input bytes. Each field is an index into a small
/// table of interesting values (the first entry is the simulator's default where it has one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Setup {
    /// Two GPUs instead of one.
    pub two_devices: bool,
    /// `range_split=off` (upstream behaviour) instead of on.
    pub split_off: bool,
    /// Each GPU its own device-private owner.
    pub separate_owners: bool,
    /// Chunk sizes: 2M,64K,4K / 64K,4K / 2M,4K / 4K.
    pub chunks: u8,
    /// VRAM per GPU: 8M / 4M / 2M / 16M.
    pub vram: u8,
    /// `migrate_min`: 64K / 4K / 2M / 1M.
    pub migrate_min: u8,
    /// Atomic timeslice: 5 / 0 / 1 / 50 ms.
    pub timeslice: u8,
    /// `check_pages_threshold`: 64K / 0 / 2M / 4K.
    pub page_check: u8,
}

impl Setup {
    fn decode(r: &mut Reader<'_>) -> Self {
        let (a, b) = (r.u8(), r.u8());
        Setup {
            two_devices: a & 1 != 0,
            split_off: a & 2 != 0,
            separate_owners: a & 4 != 0,
            chunks: (a >> 3) & 3,
            vram: (a >> 5) & 3,
            migrate_min: b & 3,
            timeslice: (b >> 2) & 3,
            page_check: (b >> 4) & 3,
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(u8::from(self.two_devices)
            | u8::from(self.split_off) << 1
            | u8::from(self.separate_owners) << 2
            | (self.chunks & 3) << 3
            | (self.vram & 3) << 5);
        w.u8((self.migrate_min & 3) | (self.timeslice & 3) << 2 | (self.page_check & 3) << 4);
    }

    fn devices(&self) -> u32 {
        if self.two_devices {
            2
        } else {
            1
        }
    }

    /// The simulation parameters.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            chunks: CHUNK_SETS[usize::from(self.chunks & 3)].to_vec(),
            vram: VRAM[usize::from(self.vram & 3)],
            devices: self.devices(),
            check_pages_threshold: PAGE_CHECK[usize::from(self.page_check & 3)],
            migrate_min: MIGRATE_MIN[usize::from(self.migrate_min & 3)],
            atomic_timeslice_ms: TIMESLICE_MS[usize::from(self.timeslice & 3)],
            range_split: !self.split_off,
            separate_owners: self.separate_owners,
            ..SimConfig::default()
        }
    }

    /// The same parameters as a scenario `config` line.
    pub fn scenario_config(&self) -> ast::Config {
        let c = self.config();
        ast::Config {
            chunks: Some(c.chunks),
            vram: Some(c.vram),
            devices: Some(c.devices),
            check_pages_threshold: Some(c.check_pages_threshold),
            migrate_min: Some(c.migrate_min),
            atomic_timeslice_ms: Some(c.atomic_timeslice_ms),
            range_split: Some(c.range_split),
            owners: Some(if c.separate_owners {
                ast::Owners::Separate
            } else {
                ast::Owners::Shared
            }),
            ..ast::Config::default()
        }
    }
}

/// A span of a region, relative to its current extent (`n` = its length in pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanSel {
    /// The whole region.
    Whole,
    /// The first `1 + a % n` pages.
    Head(u16),
    /// The last `1 + a % n` pages.
    Tail(u16),
    /// `1 + b % (n - o)` pages from page `o = a % n`: inside the region.
    Middle(u16, u16),
    /// `1 + (b & 0x3ff)` pages from page `a % (n + 16)`, 512 bytes further if `b & 0x8000`:
    /// may run past the region, start past it, or be misaligned.
    Over(u16, u16),
}

impl SpanSel {
    fn decode(r: &mut Reader<'_>) -> Self {
        let (m, a, b) = (r.u8(), r.u16(), r.u16());
        match m % 5 {
            0 => SpanSel::Whole,
            1 => SpanSel::Head(a),
            2 => SpanSel::Tail(a),
            3 => SpanSel::Middle(a, b),
            _ => SpanSel::Over(a, b),
        }
    }

    fn encode(&self, w: &mut Writer) {
        let (m, a, b) = match *self {
            SpanSel::Whole => (0, 0, 0),
            SpanSel::Head(a) => (1, a, 0),
            SpanSel::Tail(a) => (2, a, 0),
            SpanSel::Middle(a, b) => (3, a, b),
            SpanSel::Over(a, b) => (4, a, b),
        };
        w.u8(m);
        w.u16(a);
        w.u16(b);
    }

    /// `(start, len)` in bytes.
    fn resolve(&self, r: Region) -> (u64, u64) {
        let n = (r.len / PAGE).max(1);
        let end = r.start.saturating_add(r.len);
        match *self {
            SpanSel::Whole => (r.start, r.len),
            SpanSel::Head(a) => (r.start, (1 + u64::from(a) % n) * PAGE),
            SpanSel::Tail(a) => {
                let l = (1 + u64::from(a) % n) * PAGE;
                (end.saturating_sub(l), l)
            }
            SpanSel::Middle(a, b) => {
                let o = u64::from(a) % n;
                let l = 1 + u64::from(b) % (n - o);
                (r.start.saturating_add(o * PAGE), l * PAGE)
            }
            SpanSel::Over(a, b) => {
                let o = u64::from(a) % (n + 16);
                let l = 1 + u64::from(b & 0x3ff);
                let skew = if b & 0x8000 != 0 { 512 } else { 0 };
                (r.start.saturating_add(o * PAGE + skew), l * PAGE)
            }
        }
    }
}

/// A CPU or GPU access inside (or running past the end of) a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Start at byte `off * 64 % len` of the region.
    pub off: u16,
    /// `1 + len % 8192` bytes if bit 15 is clear, else `1 + (len & 0x7fff) % MAX_ACCESS_PAGES`
    /// pages.
    pub len: u16,
}

impl Access {
    fn decode(r: &mut Reader<'_>) -> Self {
        Access {
            off: r.u16(),
            len: r.u16(),
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u16(self.off);
        w.u16(self.len);
    }

    /// An access of `pages` whole pages from page `page` of the region.
    pub fn pages(page: u16, pages: u16) -> Self {
        Access {
            off: page.saturating_mul(64),
            len: 0x8000 | pages.saturating_sub(1),
        }
    }

    /// `(start, len)` in bytes.
    fn resolve(&self, r: Region) -> (u64, u64) {
        let start = r.start + u64::from(self.off) * 64 % r.len.max(1);
        let len = if self.len & 0x8000 == 0 {
            1 + u64::from(self.len) % 8192
        } else {
            (1 + u64::from(self.len & 0x7fff) % MAX_ACCESS_PAGES) * PAGE
        };
        (start, len)
    }
}

/// The new size of an `mremap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// Unchanged.
    Same,
    /// Half (rounded up to a page).
    Half,
    /// Double (at most [`MAX_REMAP_PAGES`], like every new size).
    Double,
    /// One page more.
    PlusPage,
    /// [`region_pages`]`(n)` pages.
    Pages(u16),
}

/// One operation of the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `mmap` into a slot (replacing the slot's name, not its mapping).
    Mmap {
        /// The slot named.
        slot: u8,
        /// The size, see [`region_pages`].
        pages: u16,
        /// Backing.
        kind: MapKind,
        /// Protection.
        prot: Prot,
        /// Alignment: none, 64K or 2M.
        align: Option<u64>,
        /// `MAP_FIXED` at page `16 * .1` of the region in slot `.0`.
        at: Option<(u8, u8)>,
    },
    /// `munmap`.
    Munmap {
        /// The region.
        slot: u8,
        /// The span unmapped.
        span: SpanSel,
    },
    /// `mremap` of a slot's region, naming the result in slot `to`.
    Mremap {
        /// The region.
        slot: u8,
        /// The slot naming the moved region.
        to: u8,
        /// The new size.
        resize: Resize,
        /// `MREMAP_DONTUNMAP`.
        dontunmap: bool,
    },
    /// `mprotect`.
    Mprotect {
        /// The region.
        slot: u8,
        /// The span changed.
        span: SpanSel,
        /// The new protection.
        prot: Prot,
    },
    /// `madvise(MADV_DONTNEED)`.
    Dontneed {
        /// The region.
        slot: u8,
        /// The span dropped.
        span: SpanSel,
    },
    /// A CPU write of `seed:N` bytes.
    CpuWrite {
        /// The region.
        slot: u8,
        /// Where.
        at: Access,
        /// The fill seed.
        seed: u8,
    },
    /// A CPU read, checked by the oracle.
    CpuRead {
        /// The region.
        slot: u8,
        /// Where.
        at: Access,
    },
    /// A GPU write of `seed:N` bytes.
    GpuWrite {
        /// The GPU (modulo the device count).
        dev: u8,
        /// The region.
        slot: u8,
        /// Where.
        at: Access,
        /// The fill seed.
        seed: u8,
    },
    /// A GPU read, checked by the oracle.
    GpuRead {
        /// The GPU (modulo the device count).
        dev: u8,
        /// The region.
        slot: u8,
        /// Where.
        at: Access,
    },
    /// GPU atomic increments of the 8-byte word at `off * 8 % len`.
    GpuAtomic {
        /// The GPU (modulo the device count).
        dev: u8,
        /// The region.
        slot: u8,
        /// The word.
        off: u16,
        /// `1 + count` increments.
        count: u8,
    },
    /// `prefetch`.
    Prefetch {
        /// The GPU (modulo the device count).
        dev: u8,
        /// The region.
        slot: u8,
        /// The span.
        span: SpanSel,
        /// To VRAM (else to RAM).
        vram: bool,
    },
    /// `evict`: every GPU or one, everything or the allocations mapped in a span.
    Evict {
        /// The GPU (modulo the device count), or all.
        dev: Option<u8>,
        /// The span, or everything.
        span: Option<(u8, SpanSel)>,
    },
    /// `advise`.
    Advise {
        /// The region.
        slot: u8,
        /// The span.
        span: SpanSel,
        /// Preferred placement (`Dev(k)` modulo the device count).
        preferred: Option<Preferred>,
        /// Atomic mode.
        atomic: Option<AtomicMode>,
    },
    /// `fork` a child, and make it current if `follow`.
    Fork {
        /// Switch to the child.
        follow: bool,
    },
    /// Switch to live process `which % n`, or to a fresh one when `which % (n + 1) == n`.
    Switch {
        /// The process.
        which: u8,
    },
    /// The current process exits; another (or a fresh one) becomes current.
    Exit,
    /// The next `threads` operations (fewer if one of them cannot run concurrently, see
    /// [`Op::concurrent_ok`]) run as simulated threads of a `concurrent` block, interleaved
    /// by `seed`.
    Concurrent {
        /// The interleaving.
        seed: u8,
        /// 2 or 3.
        threads: u8,
    },
}

impl Op {
    /// Whether the operation may run in a `concurrent` block. Process operations change what
    /// "current" means, and `madvise(DONTNEED)` races the oracle itself (its shadow pages are
    /// forgotten after the mm operation, which does not hold the mmap lock for writing, so a
    /// concurrent write could be forgotten too).
    pub fn concurrent_ok(&self) -> bool {
        !matches!(
            self,
            Op::Fork { .. }
                | Op::Switch { .. }
                | Op::Exit
                | Op::Concurrent { .. }
                | Op::Dontneed { .. }
        )
    }
}

/// The pages of an `mmap`: `1 + n % MAX_REGION_PAGES` if the top two bits of `n` are set, else
/// `1 + n % 128` (up to 512 KiB). Small regions are the common case: an execution stays fast
/// (a 2M range costs 512 simulated pages per fault or migration), and they exercise the smaller
/// chunk sizes.
pub fn region_pages(n: u16) -> u64 {
    if n & 0xc000 == 0xc000 {
        1 + u64::from(n) % MAX_REGION_PAGES
    } else {
        1 + u64::from(n) % 128
    }
}

/// Opcode byte (modulo 32) to operation kind (the numbers of `Op::decode`'s match). The weights
/// favour GPU accesses and unmaps; bytes 0x00 and 0xff, which mutations insert in runs, are GPU
/// accesses (cheap) rather than `mmap`s.
const OPCODES: [u8; 32] = [
    8, // gpu read
    0, 0, 0, // mmap
    1, 1, 1, 1, // munmap
    2, 2, // mremap
    3, // mprotect
    4, // dontneed
    5, 5, // cpu write
    6, 6, // cpu read
    7, 7, 7, // gpu write
    8, 8, // gpu read
    9, // gpu atomic
    10, 10, // prefetch
    11, // evict
    12, // advise
    13, // fork
    14, // switch
    15, // exit
    16, // concurrent
    1, 7, // munmap, gpu write
];

/// The first opcode byte of operation kind `kind`.
fn opcode(kind: u8) -> u8 {
    OPCODES.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

const KINDS: [MapKind; 8] = [
    MapKind::Anon,
    MapKind::Anon,
    MapKind::Thp,
    MapKind::Shared,
    MapKind::File,
    MapKind::Hugetlb,
    MapKind::Anon,
    MapKind::Thp,
];
const PROTS: [Prot; 4] = [Prot::Rw, Prot::Rw, Prot::R, Prot::None];
const ALIGNS: [Option<u64>; 4] = [None, None, Some(64 * K), Some(2 * M)];

fn decode_prot(b: u8) -> Prot {
    PROTS[usize::from(b & 3)]
}

fn encode_prot(p: Prot) -> u8 {
    match p {
        Prot::Rw => 0,
        Prot::R => 2,
        Prot::None => 3,
    }
}

impl Op {
    fn decode(r: &mut Reader<'_>) -> Op {
        let code = OPCODES[usize::from(r.u8() % 32)];
        let slot = |r: &mut Reader<'_>| r.u8() % SLOTS;
        let dev = |r: &mut Reader<'_>| r.u8() & 1;
        match code {
            0 => {
                let (slot, pages, flags, at) = (slot(r), r.u16(), r.u8(), r.u8());
                Op::Mmap {
                    slot,
                    pages,
                    kind: KINDS[usize::from(flags & 7)],
                    prot: decode_prot(flags >> 3),
                    align: ALIGNS[usize::from((flags >> 5) & 3)],
                    at: (flags & 0x80 != 0).then_some((at % SLOTS, at >> 2)),
                }
            }
            1 => Op::Munmap {
                slot: slot(r),
                span: SpanSel::decode(r),
            },
            2 => {
                let (slot, to, m, n, dontunmap) = (slot(r), slot(r), r.u8(), r.u16(), r.bool());
                let resize = match m % 5 {
                    0 => Resize::Same,
                    1 => Resize::Half,
                    2 => Resize::Double,
                    3 => Resize::PlusPage,
                    _ => Resize::Pages(n),
                };
                Op::Mremap {
                    slot,
                    to,
                    resize,
                    dontunmap,
                }
            }
            3 => Op::Mprotect {
                slot: slot(r),
                span: SpanSel::decode(r),
                prot: decode_prot(r.u8()),
            },
            4 => Op::Dontneed {
                slot: slot(r),
                span: SpanSel::decode(r),
            },
            5 => Op::CpuWrite {
                slot: slot(r),
                at: Access::decode(r),
                seed: r.u8(),
            },
            6 => Op::CpuRead {
                slot: slot(r),
                at: Access::decode(r),
            },
            7 => Op::GpuWrite {
                dev: dev(r),
                slot: slot(r),
                at: Access::decode(r),
                seed: r.u8(),
            },
            8 => Op::GpuRead {
                dev: dev(r),
                slot: slot(r),
                at: Access::decode(r),
            },
            9 => Op::GpuAtomic {
                dev: dev(r),
                slot: slot(r),
                off: r.u16(),
                count: r.u8(),
            },
            10 => Op::Prefetch {
                dev: dev(r),
                slot: slot(r),
                span: SpanSel::decode(r),
                vram: r.bool(),
            },
            11 => {
                let d = r.u8() % 3;
                let s = slot(r);
                let has_span = r.bool();
                let span = SpanSel::decode(r);
                Op::Evict {
                    dev: d.checked_sub(1),
                    span: has_span.then_some((s, span)),
                }
            }
            12 => {
                let (slot, span, p, a) = (slot(r), SpanSel::decode(r), r.u8(), r.u8());
                let preferred = match p % 5 {
                    0 => None,
                    1 => Some(Preferred::Vram),
                    2 => Some(Preferred::Ram),
                    3 => Some(Preferred::Dev(0)),
                    _ => Some(Preferred::Dev(1)),
                };
                let atomic = match a % 5 {
                    0 => None,
                    1 => Some(AtomicMode::Device),
                    2 => Some(AtomicMode::Global),
                    3 => Some(AtomicMode::Cpu),
                    _ => Some(AtomicMode::Default),
                };
                Op::Advise {
                    slot,
                    span,
                    preferred,
                    atomic,
                }
            }
            13 => Op::Fork { follow: r.bool() },
            14 => Op::Switch { which: r.u8() },
            15 => Op::Exit,
            _ => Op::Concurrent {
                seed: r.u8(),
                threads: 2 + r.u8() % 2,
            },
        }
    }

    fn encode(&self, w: &mut Writer) {
        match *self {
            Op::Mmap {
                slot,
                pages,
                kind,
                prot,
                align,
                at,
            } => {
                w.u8(opcode(0));
                w.u8(slot);
                w.u16(pages);
                let k = KINDS.iter().position(|x| *x == kind).unwrap_or(0) as u8;
                let a = ALIGNS.iter().position(|x| *x == align).unwrap_or(0) as u8;
                let fixed = if at.is_some() { 0x80 } else { 0 };
                w.u8(k | encode_prot(prot) << 3 | a << 5 | fixed);
                w.u8(at.map_or(0, |(s, o)| (s % SLOTS) | (o << 2)));
            }
            Op::Munmap { slot, span } => {
                w.u8(opcode(1));
                w.u8(slot);
                span.encode(w);
            }
            Op::Mremap {
                slot,
                to,
                resize,
                dontunmap,
            } => {
                w.u8(opcode(2));
                w.u8(slot);
                w.u8(to);
                let (m, n) = match resize {
                    Resize::Same => (0, 0),
                    Resize::Half => (1, 0),
                    Resize::Double => (2, 0),
                    Resize::PlusPage => (3, 0),
                    Resize::Pages(n) => (4, n),
                };
                w.u8(m);
                w.u16(n);
                w.bool(dontunmap);
            }
            Op::Mprotect { slot, span, prot } => {
                w.u8(opcode(3));
                w.u8(slot);
                span.encode(w);
                w.u8(encode_prot(prot));
            }
            Op::Dontneed { slot, span } => {
                w.u8(opcode(4));
                w.u8(slot);
                span.encode(w);
            }
            Op::CpuWrite { slot, at, seed } => {
                w.u8(opcode(5));
                w.u8(slot);
                at.encode(w);
                w.u8(seed);
            }
            Op::CpuRead { slot, at } => {
                w.u8(opcode(6));
                w.u8(slot);
                at.encode(w);
            }
            Op::GpuWrite {
                dev,
                slot,
                at,
                seed,
            } => {
                w.u8(opcode(7));
                w.u8(dev);
                w.u8(slot);
                at.encode(w);
                w.u8(seed);
            }
            Op::GpuRead { dev, slot, at } => {
                w.u8(opcode(8));
                w.u8(dev);
                w.u8(slot);
                at.encode(w);
            }
            Op::GpuAtomic {
                dev,
                slot,
                off,
                count,
            } => {
                w.u8(opcode(9));
                w.u8(dev);
                w.u8(slot);
                w.u16(off);
                w.u8(count);
            }
            Op::Prefetch {
                dev,
                slot,
                span,
                vram,
            } => {
                w.u8(opcode(10));
                w.u8(dev);
                w.u8(slot);
                span.encode(w);
                w.bool(vram);
            }
            Op::Evict { dev, span } => {
                w.u8(opcode(11));
                w.u8(dev.map_or(0, |d| 1 + (d & 1)));
                w.u8(span.map_or(0, |(s, _)| s));
                w.bool(span.is_some());
                span.map_or(SpanSel::Whole, |(_, s)| s).encode(w);
            }
            Op::Advise {
                slot,
                span,
                preferred,
                atomic,
            } => {
                w.u8(opcode(12));
                w.u8(slot);
                span.encode(w);
                w.u8(match preferred {
                    None => 0,
                    Some(Preferred::Vram) => 1,
                    Some(Preferred::Ram) => 2,
                    Some(Preferred::Dev(0)) => 3,
                    Some(Preferred::Dev(_)) => 4,
                });
                w.u8(match atomic {
                    None => 0,
                    Some(AtomicMode::Device) => 1,
                    Some(AtomicMode::Global) => 2,
                    Some(AtomicMode::Cpu) => 3,
                    Some(AtomicMode::Default) => 4,
                });
            }
            Op::Fork { follow } => {
                w.u8(opcode(13));
                w.bool(follow);
            }
            Op::Switch { which } => {
                w.u8(opcode(14));
                w.u8(which);
            }
            Op::Exit => w.u8(opcode(15)),
            Op::Concurrent { seed, threads } => {
                w.u8(opcode(16));
                w.u8(seed);
                w.u8(threads.saturating_sub(2));
            }
        }
    }
}

/// A decoded input: the set-up and the operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// The world's parameters.
    pub setup: Setup,
    /// The operations, at most [`MAX_OPS`].
    pub ops: Vec<Op>,
}

impl Program {
    /// Decodes any bytes (total: every input is a program).
    pub fn decode(data: &[u8]) -> Program {
        let mut r = Reader::new(data);
        let setup = Setup::decode(&mut r);
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::decode(&mut r));
        }
        Program { setup, ops }
    }

    /// The bytes [`Program::decode`] turns back into this program.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.setup.encode(&mut w);
        for op in &self.ops {
            op.encode(&mut w);
        }
        w.bytes
    }
}

/// Runs one fuzz input.
///
/// # Panics
///
/// On a finding (see the module docs), with a reproduction.
pub fn run(data: &[u8]) {
    install_panic_trace();
    let program = Program::decode(data);
    if let Err(finding) = execute(&program) {
        panic!("{finding}");
    }
}

thread_local! {
    /// The trace of the run in progress on this thread and the operation being executed, for
    /// the panic hook: a panic in the simulator or the core (not a finding of the oracle, which
    /// prints its own reproduction) still leaves a runnable scenario behind.
    static IN_PROGRESS: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Chains a panic hook (once per process) that prints the trace of the run in progress before
/// the previous hook runs (libFuzzer's aborts the process; the test harness's reports).
fn install_panic_trace() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let pending = IN_PROGRESS
                .try_with(|t| t.try_borrow_mut().ok().and_then(|mut t| t.take()))
                .ok()
                .flatten();
            if let Some(trace) = pending {
                eprintln!("unmap_sequences: panic; reproduction (.svm) so far:\n{trace}");
            }
            previous(info);
        }));
    });
}

/// Records the trace so far and the operation about to run, for the panic hook.
fn set_in_progress(run: &Runner, next: Option<&Op>) {
    let text = match next {
        Some(op) => format!("{}# panicked in: {op:?}\n", run.trace),
        None => format!("{}# panicked at teardown\n", run.trace),
    };
    let _ = IN_PROGRESS.try_with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            *t = Some(text);
        }
    });
}

fn clear_in_progress() {
    let _ = IN_PROGRESS.try_with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            *t = None;
        }
    });
}

/// What a failed run found, with the reproduction.
#[derive(Clone, Debug)]
pub struct Finding {
    /// What went wrong.
    pub what: String,
    /// The index of the operation after which it was found (`ops.len()` for teardown).
    pub op: usize,
    /// The operations executed, as a `.svm` scenario.
    pub scenario: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unmap_sequences: {} (after operation {})\n--- reproduction (.svm) ---\n{}",
            self.what, self.op, self.scenario
        )
    }
}

/// Runs a program; `Err` describes the first finding.
///
/// # Errors
///
/// A [`Finding`]: corruption, SIGBUS, a DMA error or a leak. (Panics of the code under test
/// propagate.)
pub fn execute(program: &Program) -> Result<(), Finding> {
    let mut run = Runner::new(program.setup);
    let mut i = 0;
    while i < program.ops.len() {
        let first = i;
        set_in_progress(&run, program.ops.get(i));
        i += run.step(&program.ops[i..]);
        run.world.settle();
        let mut problems = std::mem::take(&mut run.problems);
        problems.extend(
            run.world
                .dma_errors()
                .into_iter()
                .map(|e| format!("DMA error: {e}")),
        );
        problems.extend(crate::invariants::check_world(&run.world));
        if !problems.is_empty() {
            clear_in_progress();
            return Err(run.finding(problems.join("; "), first));
        }
    }
    set_in_progress(&run, None);
    let leaks = run.world.teardown();
    clear_in_progress();
    if !leaks.is_empty() {
        let n = program.ops.len();
        return Err(run.finding(format!("leaks at teardown: {}", leaks.join("; ")), n));
    }
    Ok(())
}

/// Runs a program and returns the scenario trace, whatever happens (for seeds and triage).
pub fn trace(program: &Program) -> String {
    install_panic_trace();
    let mut run = Runner::new(program.setup);
    let mut i = 0;
    while i < program.ops.len() {
        set_in_progress(&run, program.ops.get(i));
        i += run.step(&program.ops[i..]);
        run.world.settle();
    }
    set_in_progress(&run, None);
    let leaks = run.world.teardown();
    clear_in_progress();
    for leak in leaks {
        let _ = writeln!(run.trace, "# leak at teardown: {leak}");
    }
    run.trace
}

/// An operation with its operands resolved, ready to run on the world (possibly on a simulated
/// thread of a `concurrent` block).
type Task = Box<dyn FnOnce(&World) -> OpResult + Send>;

/// A planned operation: what the trace shows, and what runs.
struct Planned {
    kind: StmtKind,
    task: Task,
}

struct Runner {
    world: World,
    devices: u32,
    next_name: u32,
    trace: String,
    problems: Vec<String>,
}

fn slot_name(slot: u8) -> String {
    format!("r{}", slot % SLOTS)
}

fn sim_prot(p: Prot) -> mm::Prot {
    match p {
        Prot::Rw => mm::Prot::Rw,
        Prot::R => mm::Prot::R,
        Prot::None => mm::Prot::None,
    }
}

fn sim_kind(k: MapKind) -> mm::MapKind {
    match k {
        MapKind::Anon => mm::MapKind::Anon,
        MapKind::Shared => mm::MapKind::Shared,
        MapKind::File => mm::MapKind::File,
        MapKind::Thp => mm::MapKind::Thp,
        MapKind::Hugetlb => mm::MapKind::Hugetlb,
    }
}

fn span(start: u64, len: u64) -> ast::Span {
    ast::Span {
        addr: Address::Absolute(start),
        len: Some(len),
    }
}

fn filled(seed: u8, addr: u64, len: u64) -> (Fill, Vec<u8>) {
    let fill = Fill::Seed(u64::from(seed));
    let mut buf = vec![0u8; len as usize];
    fill_bytes(&fill, addr, &mut buf);
    (fill, buf)
}

impl Runner {
    fn new(setup: Setup) -> Self {
        let cfg = setup.config();
        let world = match World::new(cfg) {
            Ok(w) => w,
            Err(e) => panic!("unmap_sequences: invalid set-up {setup:?}: {e}"),
        };
        let mut trace = String::new();
        let _ = writeln!(trace, "{}", setup.scenario_config());
        Runner {
            world,
            devices: setup.devices(),
            next_name: 1,
            trace,
            problems: Vec::new(),
        }
    }

    fn finding(&self, what: String, op: usize) -> Finding {
        Finding {
            what,
            op,
            scenario: self.trace.clone(),
        }
    }

    fn dev(&self, d: u8) -> u32 {
        u32::from(d) % self.devices
    }

    /// Runs the operation at the head of `ops` (a `concurrent` marker with its group); returns
    /// how many operations it consumed.
    fn step(&mut self, ops: &[Op]) -> usize {
        match ops.first() {
            None => 1,
            Some(Op::Concurrent { seed, threads }) => {
                let group: Vec<Op> = ops
                    .iter()
                    .skip(1)
                    .take(usize::from(*threads))
                    .take_while(|op| op.concurrent_ok())
                    .copied()
                    .collect();
                self.concurrent(*seed, &group);
                1 + group.len()
            }
            Some(op) => {
                self.op(op);
                1
            }
        }
    }

    /// The statement recording `kind` and its outcome for the trace; `None` for a harness-level
    /// outcome (recorded as a comment). A finding goes to `problems`, its message to the
    /// returned comment.
    fn stmt(&mut self, kind: StmtKind, r: &OpResult) -> Option<(Stmt, String)> {
        let mut outcome = Outcome::default();
        let mut comment = String::new();
        match r {
            Ok(()) => {}
            Err(OpError::Errno(e)) => match Errno::from_errno(e.to_errno()) {
                Some(n) => outcome.alts = vec![Expected::Errno(n)],
                None => comment = format!("  # errno {}", e.to_errno()),
            },
            Err(OpError::Segv) => outcome.alts = vec![Expected::Segv],
            // Harness-level outcomes (a slot without a region; `Mismatch` needs an `expect=`,
            // which the harness never gives): not an operation of the scenario.
            Err(OpError::Usage(m) | OpError::Mismatch(m)) => {
                let _ = writeln!(self.trace, "# skipped `{kind}`: {m}");
                return None;
            }
            Err(e @ (OpError::Corruption(_) | OpError::Sigbus(_))) => {
                comment = format!("  # FINDING: {e}");
                self.problems.push(format!("`{kind}`: {e}"));
            }
        }
        let stmt = Stmt {
            line: 0,
            col: 0,
            kind,
            outcome,
        };
        Some((stmt, comment))
    }

    /// Records a statement and its outcome in the trace, and a finding in `problems`.
    fn note(&mut self, kind: StmtKind, r: &OpResult) {
        if let Some((stmt, comment)) = self.stmt(kind, r) {
            let _ = writeln!(self.trace, "{stmt}{comment}");
        }
    }

    fn region(&mut self, slot: u8, verb: &str) -> Option<Region> {
        match self.world.region(&slot_name(slot)) {
            Ok(r) => Some(r),
            Err(e) => {
                let _ = writeln!(self.trace, "# skipped {verb} on {}: {e}", slot_name(slot));
                None
            }
        }
    }

    /// Runs the operations of a `concurrent` block as simulated threads interleaved by `seed`.
    fn concurrent(&mut self, seed: u8, group: &[Op]) {
        let planned: Vec<Planned> = group.iter().filter_map(|op| self.plan(op)).collect();
        if planned.is_empty() {
            return;
        }
        let (kinds, tasks): (Vec<StmtKind>, Vec<Task>) =
            planned.into_iter().map(|p| (p.kind, p.task)).unzip();
        let world = &self.world;
        let threads: Vec<Box<dyn FnOnce() -> OpResult + Send + '_>> = tasks
            .into_iter()
            .map(|task| Box::new(move || task(world)) as Box<dyn FnOnce() -> OpResult + Send + '_>)
            .collect();
        let results = sched::run_concurrent(u64::from(seed), threads);
        let mut body = Vec::new();
        let mut comments = String::new();
        for (kind, r) in kinds.into_iter().zip(&results) {
            if let Some((stmt, comment)) = self.stmt(kind, r) {
                if !comment.is_empty() {
                    let _ = writeln!(comments, "#   `{stmt}`:{comment}");
                }
                body.push(stmt);
            }
        }
        if body.is_empty() {
            return;
        }
        let block = Stmt {
            line: 0,
            col: 0,
            kind: StmtKind::Concurrent {
                seed: u64::from(seed),
                body,
            },
            outcome: Outcome::default(),
        };
        let _ = writeln!(self.trace, "{block}");
        if !comments.is_empty() {
            let _ = write!(self.trace, "# in the block above:\n{comments}");
        }
    }

    /// Runs one operation (not a `concurrent` marker).
    fn op(&mut self, op: &Op) {
        match *op {
            Op::Fork { follow } => {
                if self.world.processes().len() >= MAX_PROCS {
                    let _ = writeln!(self.trace, "# skipped fork: {MAX_PROCS} processes live");
                    return;
                }
                let child = format!("c{}", self.fresh());
                let r = self.world.fork(&child);
                let ok = r.is_ok();
                self.note(
                    StmtKind::Fork {
                        child: child.clone(),
                    },
                    &r,
                );
                if ok && follow {
                    self.switch(child);
                }
            }
            Op::Switch { which } => {
                let names: Vec<String> = self
                    .world
                    .processes()
                    .iter()
                    .map(|p| p.name.clone())
                    .collect();
                let i = usize::from(which) % (names.len() + 1);
                let name = match names.get(i) {
                    Some(n) => n.clone(),
                    None if names.len() < MAX_PROCS => format!("n{}", self.fresh()),
                    None => names.first().cloned().unwrap_or_else(|| "p0".into()),
                };
                self.switch(name);
            }
            Op::Exit => {
                let r = self.world.exit();
                self.note(StmtKind::Exit, &r);
                let next = self.world.processes().first().map(|p| p.name.clone());
                let name = next.unwrap_or_else(|| format!("n{}", self.fresh()));
                self.switch(name);
            }
            Op::Concurrent { .. } => {}
            _ => {
                if let Some(p) = self.plan(op) {
                    let expect = self.gpu_expectation(&p.kind);
                    let r = (p.task)(&self.world);
                    let wrong = match (expect, &r) {
                        (Some(true), Err(e)) if !matches!(e, OpError::Usage(_)) => {
                            Some(format!("failed on memory mapped with its permission: {e}"))
                        }
                        (Some(false), Ok(())) => {
                            Some("succeeded on memory without its permission".to_string())
                        }
                        _ => None,
                    };
                    let kind = p.kind.to_string();
                    self.note(p.kind, &r);
                    if let Some(what) = wrong {
                        let _ = writeln!(self.trace, "# FINDING: the access above {what}");
                        self.problems.push(format!("`{kind}` {what}"));
                    }
                }
            }
        }
    }

    /// What a sequential GPU read or write must do, from the current process's VMAs (no fault
    /// injection is active and nothing runs concurrently, so the outcome is determined):
    /// `Some(true)` succeed — every page is mapped with the access's permission, whatever the
    /// mapping kind, placement or VRAM pressure; `Some(false)` fail — some page is unmapped or
    /// lacks the permission. `None` for other operations.
    fn gpu_expectation(&self, kind: &StmtKind) -> Option<bool> {
        let (span, write) = match kind {
            StmtKind::GpuRead { span, .. } => (span, false),
            StmtKind::GpuWrite { span, .. } => (span, true),
            _ => return None,
        };
        let (Address::Absolute(start), Some(len)) = (&span.addr, span.len) else {
            return None;
        };
        if len == 0 {
            return None;
        }
        let proc = self.world.current().ok()?;
        let end = start.checked_add(len)?;
        let mut a = *start;
        while a < end {
            let Some(vma) = proc.mm.vma(a).filter(|v| v.start <= a && a < v.end) else {
                return Some(false);
            };
            let allowed = if write {
                vma.prot.writable()
            } else {
                vma.prot.readable()
            };
            if !allowed {
                return Some(false);
            }
            a = vma.end;
        }
        Some(true)
    }

    /// Resolves the operands of a memory or device operation against the current regions;
    /// `None` (with a comment in the trace) if its slot holds no region.
    fn plan(&mut self, op: &Op) -> Option<Planned> {
        let planned = match *op {
            Op::Mmap {
                slot,
                pages,
                kind,
                prot,
                align,
                at,
            } => {
                let size = region_pages(pages) * PAGE;
                let at = match at {
                    Some((s, o)) => {
                        let r = self.region(s, "mmap at")?;
                        Some(r.start.saturating_add(u64::from(o) * 16 * PAGE))
                    }
                    None => None,
                };
                let name = slot_name(slot);
                Planned {
                    kind: StmtKind::Mmap {
                        name: name.clone(),
                        size,
                        align,
                        at: at.map(Address::Absolute),
                        prot,
                        kind,
                    },
                    task: Box::new(move |w: &World| {
                        w.mmap(&name, size, align, at, sim_prot(prot), sim_kind(kind))
                            .map(|_| ())
                    }),
                }
            }
            Op::Munmap { slot, span: s } => {
                let (a, l) = s.resolve(self.region(slot, "munmap")?);
                Planned {
                    kind: StmtKind::Munmap { span: span(a, l) },
                    task: Box::new(move |w: &World| w.munmap(a, l)),
                }
            }
            Op::Mremap {
                slot,
                to,
                resize,
                dontunmap,
            } => {
                let reg = self.region(slot, "mremap")?;
                let size = match resize {
                    Resize::Same => None,
                    Resize::Half => Some((reg.len / 2).next_multiple_of(PAGE)),
                    Resize::Double => Some(reg.len.saturating_mul(2)),
                    Resize::PlusPage => Some(reg.len.saturating_add(PAGE)),
                    Resize::Pages(n) => Some(region_pages(n) * PAGE),
                }
                .map(|s| s.min(MAX_REMAP_PAGES * PAGE));
                let (name, new_name) = (slot_name(slot), slot_name(to));
                Planned {
                    kind: StmtKind::Mremap {
                        name: name.clone(),
                        new_name: new_name.clone(),
                        size,
                        dontunmap,
                    },
                    task: Box::new(move |w: &World| w.mremap(&name, &new_name, size, dontunmap)),
                }
            }
            Op::Mprotect {
                slot,
                span: s,
                prot,
            } => {
                let (a, l) = s.resolve(self.region(slot, "mprotect")?);
                Planned {
                    kind: StmtKind::Mprotect {
                        span: span(a, l),
                        prot,
                    },
                    task: Box::new(move |w: &World| w.mprotect(a, l, sim_prot(prot))),
                }
            }
            Op::Dontneed { slot, span: s } => {
                let (a, l) = s.resolve(self.region(slot, "madvise")?);
                Planned {
                    kind: StmtKind::MadviseDontneed { span: span(a, l) },
                    task: Box::new(move |w: &World| w.madvise_dontneed(a, l)),
                }
            }
            Op::CpuWrite { slot, at, seed } => {
                let (a, l) = at.resolve(self.region(slot, "cpu write")?);
                let (fill, buf) = filled(seed, a, l);
                Planned {
                    kind: StmtKind::CpuWrite {
                        span: span(a, l),
                        fill,
                    },
                    task: Box::new(move |w: &World| w.cpu_write(a, &buf)),
                }
            }
            Op::CpuRead { slot, at } => {
                let (a, l) = at.resolve(self.region(slot, "cpu read")?);
                Planned {
                    kind: StmtKind::CpuRead {
                        span: span(a, l),
                        expect: None,
                    },
                    task: Box::new(move |w: &World| w.cpu_read(a, &mut vec![0u8; l as usize])),
                }
            }
            Op::GpuWrite {
                dev,
                slot,
                at,
                seed,
            } => {
                let (a, l) = at.resolve(self.region(slot, "gpu write")?);
                let dev = self.dev(dev);
                let (fill, buf) = filled(seed, a, l);
                Planned {
                    kind: StmtKind::GpuWrite {
                        span: span(a, l),
                        fill,
                        dev: Some(dev),
                    },
                    task: Box::new(move |w: &World| w.gpu_write(dev, a, &buf)),
                }
            }
            Op::GpuRead { dev, slot, at } => {
                let (a, l) = at.resolve(self.region(slot, "gpu read")?);
                let dev = self.dev(dev);
                Planned {
                    kind: StmtKind::GpuRead {
                        span: span(a, l),
                        expect: None,
                        dev: Some(dev),
                    },
                    task: Box::new(move |w: &World| w.gpu_read(dev, a, &mut vec![0u8; l as usize])),
                }
            }
            Op::GpuAtomic {
                dev,
                slot,
                off,
                count,
            } => {
                let reg = self.region(slot, "gpu atomic")?;
                let dev = self.dev(dev);
                let a = reg.start + u64::from(off) * 8 % reg.len.max(8);
                let count = 1 + u64::from(count);
                Planned {
                    kind: StmtKind::GpuAtomic {
                        addr: Address::Absolute(a),
                        count,
                        dev: Some(dev),
                    },
                    task: Box::new(move |w: &World| w.gpu_atomic(dev, a, count)),
                }
            }
            Op::Prefetch {
                dev,
                slot,
                span: s,
                vram,
            } => {
                let (a, l) = s.resolve(self.region(slot, "prefetch")?);
                let dev = self.dev(dev);
                Planned {
                    kind: StmtKind::Prefetch {
                        span: span(a, l),
                        to: if vram {
                            Placement::Vram
                        } else {
                            Placement::Ram
                        },
                        dev: Some(dev),
                    },
                    task: Box::new(move |w: &World| w.prefetch(dev, a, l, vram)),
                }
            }
            Op::Evict { dev, span: s } => {
                let dev = dev.map(|d| self.dev(d));
                let sp = match s {
                    Some((slot, sel)) => Some(sel.resolve(self.region(slot, "evict")?)),
                    None => None,
                };
                Planned {
                    kind: StmtKind::Evict {
                        dev,
                        span: sp.map(|(a, l)| span(a, l)),
                    },
                    task: Box::new(move |w: &World| {
                        w.evict(dev, sp.map(|(a, l)| (a, a.saturating_add(l))))
                    }),
                }
            }
            Op::Advise {
                slot,
                span: s,
                preferred,
                atomic,
            } => {
                let (a, l) = s.resolve(self.region(slot, "advise")?);
                let devices = self.devices;
                let preferred = preferred.map(|p| match p {
                    Preferred::Dev(k) => Preferred::Dev(k % devices),
                    p => p,
                });
                // `advise` needs at least one attribute.
                let atomic = match (preferred, atomic) {
                    (None, None) => Some(AtomicMode::Default),
                    (_, a) => a,
                };
                let drv_pref = preferred.map(|p| match p {
                    Preferred::Vram => DrvPreferred::Vram,
                    Preferred::Ram => DrvPreferred::Ram,
                    Preferred::Dev(k) => DrvPreferred::Dev(k),
                });
                let drv_atomic = atomic.map(|m| match m {
                    AtomicMode::Device => DrvAtomic::Device,
                    AtomicMode::Global => DrvAtomic::Global,
                    AtomicMode::Cpu => DrvAtomic::Cpu,
                    AtomicMode::Default => DrvAtomic::Default,
                });
                Planned {
                    kind: StmtKind::Advise {
                        span: span(a, l),
                        preferred,
                        atomic,
                    },
                    task: Box::new(move |w: &World| w.advise(a, l, drv_pref, drv_atomic)),
                }
            }
            Op::Fork { .. } | Op::Switch { .. } | Op::Exit | Op::Concurrent { .. } => return None,
        };
        Some(planned)
    }

    fn fresh(&mut self) -> u32 {
        let n = self.next_name;
        self.next_name += 1;
        n
    }

    fn switch(&mut self, name: String) {
        let r = self.world.switch(&name);
        self.note(StmtKind::Process { name }, &r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_inverts_encode() {
        for (_, bytes) in crate::fuzzing::seeds::unmap_sequences() {
            let p = Program::decode(&bytes);
            assert_eq!(p.encode(), bytes);
            assert_eq!(Program::decode(&p.encode()), p);
        }
    }

    #[test]
    fn decoding_is_total_and_bounded() {
        assert_eq!(Program::decode(&[]).ops, []);
        let p = Program::decode(&[0xff; 4096]);
        assert_eq!(p.ops.len(), MAX_OPS);
    }

    #[test]
    fn traces_parse_as_scenarios() {
        for (name, bytes) in crate::fuzzing::seeds::unmap_sequences() {
            let text = trace(&Program::decode(&bytes));
            if let Err(e) = gpusvm_sim::scenario::parse(name, &text) {
                panic!("{e}\n{text}");
            }
        }
    }
}
