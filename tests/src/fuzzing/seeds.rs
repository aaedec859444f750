//! The seed corpus of the fuzz targets, generated from readable descriptions.
//!
//! `fuzz/corpus/<target>/` holds exactly these files (`tests/tests/fuzz_corpus.rs` checks it and
//! rewrites them when run with `GPUSVM_WRITE_SEEDS=1`). The fuzzer starts from them; the stable
//! test suite replays them.

use std::path::Path;

use gpusvm_sim::scenario::ast::{AtomicMode, MapKind, Preferred, Prot};

use super::chunk::{Geometry, Window};
use super::unmap::{Access, Op, Program, Resize, Setup, SpanSel};

const K: u64 = 1024;
const M: u64 = 1024 * K;

/// `(file name, bytes)` of every seed of `target` (one of [`super::TARGETS`]).
pub fn for_target(target: &str) -> Vec<(String, Vec<u8>)> {
    let named = |v: Vec<(&str, Vec<u8>)>| v.into_iter().map(|(n, b)| (n.to_owned(), b)).collect();
    match target {
        "unmap_sequences" => named(unmap_sequences()),
        "chunk_select" => named(chunk_select()),
        "scenario_parser" => scenario_parser(),
        _ => Vec::new(),
    }
}

/// An `mmap` of `pages` pages (at most 1024), aligned to 2M.
fn mmap(slot: u8, pages: u16, kind: MapKind) -> Op {
    Op::Mmap {
        slot,
        pages: if pages <= 128 {
            pages - 1
        } else {
            0xc000 | (pages - 1)
        },
        kind,
        prot: Prot::Rw,
        align: Some(2 * M),
        at: None,
    }
}

fn gpu_write(dev: u8, slot: u8, at: Access, seed: u8) -> Op {
    Op::GpuWrite {
        dev,
        slot,
        at,
        seed,
    }
}

fn gpu_read(dev: u8, slot: u8, at: Access) -> Op {
    Op::GpuRead { dev, slot, at }
}

fn cpu_write(slot: u8, at: Access, seed: u8) -> Op {
    Op::CpuWrite { slot, at, seed }
}

fn cpu_read(slot: u8, at: Access) -> Op {
    Op::CpuRead { slot, at }
}

fn munmap(slot: u8, span: SpanSel) -> Op {
    Op::Munmap { slot, span }
}

fn prefetch(dev: u8, slot: u8, span: SpanSel, vram: bool) -> Op {
    Op::Prefetch {
        dev,
        slot,
        span,
        vram,
    }
}

/// CPU reads of 16 pages at eight places spread over a region of `pages` pages.
fn cpu_read_spread(slot: u8, pages: u16) -> Vec<Op> {
    (0..8)
        .map(|i| cpu_read(slot, Access::pages(i * pages / 8, 16)))
        .collect()
}

/// GPU reads of 16 pages at eight places spread over a region of `pages` pages.
fn gpu_read_spread(dev: u8, slot: u8, pages: u16) -> Vec<Op> {
    (0..8)
        .map(|i| gpu_read(dev, slot, Access::pages(i * pages / 8, 16)))
        .collect()
}

fn program(setup: Setup, parts: Vec<Vec<Op>>) -> Vec<u8> {
    let ops: Vec<Op> = parts.into_iter().flatten().collect();
    assert!(ops.len() <= super::unmap::MAX_OPS, "seed too long");
    Program { setup, ops }.encode()
}

/// Seeds of `unmap_sequences`.
pub fn unmap_sequences() -> Vec<(&'static str, Vec<u8>)> {
    let split_off = Setup {
        split_off: true,
        ..Setup::default()
    };
    let two = Setup {
        two_devices: true,
        ..Setup::default()
    };
    let mut seeds = Vec::new();
    // A 2M buffer written by the GPU (migrated to VRAM), its middle unmapped; both remaining
    // parts read back by GPU and CPU. Once with range splitting, once without.
    for (name, setup) in [
        ("partial-munmap-middle-split-on", Setup::default()),
        ("partial-munmap-middle-split-off", split_off),
    ] {
        seeds.push((
            name,
            program(
                setup,
                vec![
                    vec![mmap(0, 512, MapKind::Anon)],
                    vec![cpu_write(0, Access::pages(0, 16), 1)],
                    vec![gpu_write(0, 0, Access::pages(32, 16), 2)],
                    vec![munmap(0, SpanSel::Middle(100, 99))],
                    gpu_read_spread(0, 0, 512),
                    cpu_read_spread(0, 512),
                ],
            ),
        ));
    }
    // Head and tail unmaps of a prefetched 4M buffer, then faults on what is left.
    seeds.push((
        "head-tail-munmap-after-prefetch",
        program(
            Setup::default(),
            vec![
                vec![mmap(0, 1024, MapKind::Anon)],
                vec![cpu_write(0, Access::pages(500, 16), 3)],
                vec![prefetch(0, 0, SpanSel::Whole, true)],
                vec![munmap(0, SpanSel::Head(15))],
                vec![munmap(0, SpanSel::Tail(600))],
                vec![gpu_write(0, 0, Access::pages(16, 16), 4)],
                gpu_read_spread(0, 0, 1024),
                vec![cpu_read(0, Access::pages(400, 16))],
            ],
        ),
    ));
    // mremap of GPU-resident memory, moving and with MREMAP_DONTUNMAP, then reads of both.
    seeds.push((
        "mremap-dontunmap-gpu-resident",
        program(
            split_off,
            vec![
                vec![mmap(0, 512, MapKind::Anon)],
                vec![gpu_write(0, 0, Access::pages(0, 16), 5)],
                vec![Op::Mremap {
                    slot: 0,
                    to: 1,
                    resize: Resize::Same,
                    dontunmap: true,
                }],
                vec![gpu_read(0, 1, Access::pages(0, 16))],
                vec![gpu_read(0, 0, Access::pages(0, 16))],
                vec![Op::Mremap {
                    slot: 1,
                    to: 2,
                    resize: Resize::Double,
                    dontunmap: false,
                }],
                vec![gpu_write(0, 2, Access::pages(500, 16), 6)],
                vec![cpu_read(2, Access::pages(0, 16))],
                vec![munmap(2, SpanSel::Middle(256, 511))],
                gpu_read_spread(0, 2, 1024),
            ],
        ),
    ));
    // fork with device-resident private memory: copy-on-write against GPU mappings.
    seeds.push((
        "fork-cow-device-memory",
        program(
            Setup::default(),
            vec![
                vec![mmap(0, 512, MapKind::Anon)],
                vec![mmap(1, 64, MapKind::Shared)],
                vec![gpu_write(0, 0, Access::pages(0, 16), 7)],
                vec![gpu_write(0, 1, Access::pages(0, 16), 8)],
                vec![Op::Fork { follow: true }],
                vec![cpu_write(0, Access::pages(0, 8), 9)],
                vec![gpu_write(0, 0, Access::pages(4, 8), 10)],
                vec![cpu_read(1, Access::pages(0, 16))],
                vec![Op::Switch { which: 1 }],
                vec![gpu_read(0, 0, Access::pages(0, 16))],
                vec![munmap(0, SpanSel::Head(3))],
                vec![Op::Switch { which: 0 }],
                vec![Op::Exit],
                // Past the unmapped head (4 pages), in the surviving process.
                vec![gpu_read(0, 0, Access::pages(4, 12))],
                vec![cpu_read(0, Access::pages(4, 12))],
            ],
        ),
    ));
    // Chunk selection next to an existing range: a 64 KiB VMA whose pages are not yet present
    // gets a 4 KiB range (check_pages_threshold); once the CPU has populated the rest, a fault
    // on the next page could take 64 KiB, which would overlap the 4 KiB range, so it must not.
    seeds.push((
        "small-range-then-populated-neighbour",
        program(
            Setup::default(),
            vec![
                vec![mmap(0, 16, MapKind::Anon)],
                vec![gpu_read(0, 0, Access::pages(0, 1))],
                vec![cpu_write(0, Access::pages(0, 16), 21)],
                vec![gpu_read(0, 0, Access::pages(1, 1))],
                vec![gpu_write(0, 0, Access::pages(0, 16), 22)],
                vec![cpu_read(0, Access::pages(0, 16))],
            ],
        ),
    ));
    // Protection changes and MADV_DONTNEED under GPU mappings.
    seeds.push((
        "mprotect-dontneed",
        program(
            Setup::default(),
            vec![
                vec![mmap(0, 512, MapKind::Anon)],
                vec![gpu_write(0, 0, Access::pages(0, 16), 11)],
                // Pages 16..32 become read-only: the GPU may read them but not write them,
                // also once the read has mapped them.
                vec![Op::Mprotect {
                    slot: 0,
                    span: SpanSel::Middle(16, 15),
                    prot: Prot::R,
                }],
                vec![gpu_read(0, 0, Access::pages(16, 16))],
                vec![gpu_write(0, 0, Access::pages(16, 16), 12)],
                vec![gpu_write(0, 0, Access::pages(0, 16), 13)],
                vec![gpu_read(0, 0, Access::pages(0, 16))],
                vec![Op::Dontneed {
                    slot: 0,
                    span: SpanSel::Head(31),
                }],
                vec![gpu_read(0, 0, Access::pages(0, 16))],
                vec![Op::Mprotect {
                    slot: 0,
                    span: SpanSel::Whole,
                    prot: Prot::None,
                }],
                vec![gpu_read(0, 0, Access::pages(0, 1))],
                vec![cpu_read(0, Access::pages(0, 1))],
                vec![Op::Mprotect {
                    slot: 0,
                    span: SpanSel::Whole,
                    prot: Prot::Rw,
                }],
                vec![cpu_read(0, Access::pages(32, 16))],
            ],
        ),
    ));
    // Two GPUs: peer access, prefetch to the other device, atomics, eviction.
    seeds.push((
        "two-devices-atomics-evict",
        program(
            two,
            vec![
                vec![mmap(0, 512, MapKind::Anon)],
                vec![gpu_write(0, 0, Access::pages(0, 16), 13)],
                vec![gpu_read(1, 0, Access::pages(0, 16))],
                vec![prefetch(1, 0, SpanSel::Whole, true)],
                vec![Op::GpuAtomic {
                    dev: 0,
                    slot: 0,
                    off: 3,
                    count: 9,
                }],
                vec![Op::Advise {
                    slot: 0,
                    span: SpanSel::Whole,
                    preferred: Some(Preferred::Dev(1)),
                    atomic: Some(AtomicMode::Device),
                }],
                vec![Op::GpuAtomic {
                    dev: 1,
                    slot: 0,
                    off: 3,
                    count: 1,
                }],
                vec![cpu_read(0, Access::pages(0, 1))],
                vec![Op::Evict {
                    dev: Some(1),
                    span: None,
                }],
                vec![gpu_read(0, 0, Access::pages(0, 16))],
                vec![munmap(0, SpanSel::Tail(255))],
                vec![gpu_read(1, 0, Access::pages(0, 16))],
            ],
        ),
    ));
    // Every mapping kind under GPU faults and partial unmaps.
    let mut kinds = Vec::new();
    for (slot, kind) in [
        (0, MapKind::Thp),
        (1, MapKind::Shared),
        (2, MapKind::File),
        (3, MapKind::Hugetlb),
    ] {
        kinds.push(vec![mmap(slot, 512, kind)]);
        kinds.push(vec![cpu_write(slot, Access::pages(8, 8), slot)]);
        kinds.push(vec![gpu_write(0, slot, Access::pages(0, 16), 20 + slot)]);
        kinds.push(vec![munmap(slot, SpanSel::Middle(32, 31))]);
        kinds.push(vec![gpu_read(0, slot, Access::pages(0, 16))]);
        kinds.push(vec![cpu_read(slot, Access::pages(64, 16))]);
    }
    seeds.push(("mapping-kinds", program(Setup::default(), kinds)));
    // VRAM pressure: 2M of VRAM, three 2M buffers prefetched in turn.
    let tiny = Setup {
        vram: 2,
        ..Setup::default()
    };
    let mut pressure = Vec::new();
    for slot in 0..3 {
        pressure.push(vec![mmap(slot, 512, MapKind::Anon)]);
        pressure.push(vec![cpu_write(slot, Access::pages(0, 4), slot)]);
        pressure.push(vec![prefetch(0, slot, SpanSel::Whole, true)]);
    }
    for slot in 0..3 {
        pressure.push(vec![gpu_read(0, slot, Access::pages(0, 16))]);
        pressure.push(vec![munmap(slot, SpanSel::Head(0))]);
    }
    seeds.push(("vram-pressure", program(tiny, pressure)));
    // MAP_FIXED over GPU-mapped memory, and an unmap spanning two regions.
    seeds.push((
        "map-fixed-over-gpu-mapping",
        program(
            Setup {
                chunks: 1,
                ..Setup::default()
            },
            vec![
                vec![mmap(0, 512, MapKind::Anon)],
                vec![gpu_write(0, 0, Access::pages(0, 16), 30)],
                vec![Op::Mmap {
                    slot: 1,
                    pages: 31, // 32 pages
                    kind: MapKind::Anon,
                    prot: Prot::Rw,
                    align: None,
                    at: Some((0, 1)),
                }],
                vec![gpu_read(0, 0, Access::pages(0, 16))],
                vec![gpu_write(0, 1, Access::pages(0, 16), 31)],
                vec![munmap(0, SpanSel::Over(8, 40))],
                vec![gpu_read(0, 0, Access::pages(0, 16))],
                vec![cpu_read(1, Access::pages(0, 16))],
            ],
        ),
    ));
    // Races: a GPU write against an unmap of half its range, a CPU read against an eviction,
    // a prefetch against mprotect and a GPU read.
    seeds.push((
        "concurrent-munmap-evict-prefetch",
        program(
            Setup::default(),
            vec![
                vec![mmap(0, 512, MapKind::Anon)],
                vec![cpu_write(0, Access::pages(0, 16), 50)],
                vec![Op::Concurrent {
                    seed: 1,
                    threads: 2,
                }],
                vec![gpu_write(0, 0, Access::pages(250, 16), 51)],
                vec![munmap(0, SpanSel::Tail(255))],
                vec![gpu_read(0, 0, Access::pages(240, 16))],
                vec![Op::Concurrent {
                    seed: 2,
                    threads: 2,
                }],
                vec![cpu_read(0, Access::pages(240, 16))],
                vec![Op::Evict {
                    dev: None,
                    span: None,
                }],
                vec![Op::Concurrent {
                    seed: 3,
                    threads: 3,
                }],
                vec![prefetch(0, 0, SpanSel::Head(255), true)],
                vec![Op::Mprotect {
                    slot: 0,
                    span: SpanSel::Middle(16, 15),
                    prot: Prot::R,
                }],
                vec![gpu_read(0, 0, Access::pages(8, 16))],
                gpu_read_spread(0, 0, 256),
                cpu_read_spread(0, 256),
            ],
        ),
    ));
    // Two GPUs racing on one range, and an mremap racing a GPU fault.
    seeds.push((
        "concurrent-two-devices-mremap",
        program(
            two,
            vec![
                vec![mmap(0, 128, MapKind::Anon)],
                vec![Op::Concurrent {
                    seed: 4,
                    threads: 3,
                }],
                vec![gpu_write(0, 0, Access::pages(0, 16), 52)],
                vec![gpu_write(1, 0, Access::pages(8, 16), 53)],
                vec![Op::GpuAtomic {
                    dev: 1,
                    slot: 0,
                    off: 1,
                    count: 0,
                }],
                vec![Op::Concurrent {
                    seed: 5,
                    threads: 2,
                }],
                vec![Op::Mremap {
                    slot: 0,
                    to: 1,
                    resize: Resize::PlusPage,
                    dontunmap: false,
                }],
                vec![gpu_read(1, 0, Access::pages(0, 16))],
                vec![gpu_read(0, 1, Access::pages(0, 16))],
                vec![cpu_read(1, Access::pages(0, 16))],
            ],
        ),
    ));
    // Unaligned accesses and spans, and operations on empty slots.
    seeds.push((
        "odd-spans",
        program(
            Setup {
                page_check: 1,
                migrate_min: 1,
                ..Setup::default()
            },
            vec![
                vec![gpu_read(0, 3, Access::pages(0, 1))],
                vec![mmap(0, 3, MapKind::Anon)],
                vec![cpu_write(0, Access { off: 63, len: 5000 }, 40)],
                vec![gpu_write(0, 0, Access { off: 1, len: 100 }, 41)],
                vec![munmap(0, SpanSel::Over(1, 0x8001))],
                vec![gpu_read(0, 0, Access { off: 0, len: 8191 })],
                vec![Op::Exit],
                vec![cpu_read(0, Access::pages(0, 1))],
            ],
        ),
    ));
    seeds
}

fn window(below: u64, above: u64) -> Window {
    Window { below, above }
}

/// Seeds of `chunk_select`.
pub fn chunk_select() -> Vec<(&'static str, Vec<u8>)> {
    let base = Geometry {
        page_shift: 12,
        fault: 0x10_0020_1234,
        vma: window(0x1234 + 2 * M, 2 * M),
        notifier: window(0, 0),
        notifier_aligned: true,
        gpuva: window(0x10_0020_1234, 1 << 40),
        sizes: vec![2 * M, 64 * K, 4 * K],
        notifier_size: 512 * M,
        threshold: 64 * K,
        existing: Vec::new(),
        present: u64::MAX,
        present_outside: true,
    };
    let top = u64::MAX - 0x1234;
    vec![
        ("typical-2m", base.encode()),
        (
            "small-vma-64k",
            Geometry {
                vma: window(0x1234, 0x2_0000),
                ..base.clone()
            }
            .encode(),
        ),
        (
            "existing-range-forces-4k",
            Geometry {
                existing: vec![(7, 0), (-40, 3)],
                ..base.clone()
            }
            .encode(),
        ),
        (
            "pages-missing-within-threshold",
            Geometry {
                vma: window(0x1234, 0x2_0000),
                present: !(1 << 40),
                present_outside: false,
                ..base.clone()
            }
            .encode(),
        ),
        (
            "top-of-address-space",
            Geometry {
                fault: top,
                vma: window(4 * M, u64::MAX),
                notifier: window(u64::MAX, u64::MAX),
                notifier_aligned: false,
                gpuva: window(u64::MAX, u64::MAX),
                ..base.clone()
            }
            .encode(),
        ),
        (
            "page-16k",
            Geometry {
                page_shift: 14,
                sizes: vec![2 * M, 64 * K, 16 * K],
                existing: vec![(1, 0)],
                ..base.clone()
            }
            .encode(),
        ),
        (
            "gpuva-clips",
            Geometry {
                gpuva: window(0x1234, 0x1_0000),
                ..base.clone()
            }
            .encode(),
        ),
        (
            "invalid-lists",
            Geometry {
                page_shift: 30,
                sizes: vec![64 * K, 2 * M, 3 * K, 0, 4 * K, 4 * K, 1, 2, 8, 16],
                notifier_size: 1 << 20,
                ..base.clone()
            }
            .encode(),
        ),
        (
            "fault-at-zero",
            Geometry {
                fault: 0,
                vma: window(0, 4 * M),
                gpuva: window(0, 4 * M),
                threshold: u64::MAX,
                present: 0xffff_0000_ffff_ffff,
                ..base
            }
            .encode(),
        ),
    ]
}

/// A scenario using every verb and option, for the parser.
const EVERYTHING: &str = "\
config page=4K chunks=2M,64K,4K notifier=512M vram=256M devices=2 check_pages_threshold=64K
config migrate_min=64K atomic_timeslice_ms=5 seed=7 range_split=off owners=separate
process p0
mmap A size=4M align=2M
mmap B size=4097 at=0x7f0000000000 prot=r kind=file
mmap C size=2M at=A+2M prot=none kind=thp -> EEXIST|ok
mmap E size=2M kind=hugetlb -> ENOMEM
cpu write A fill=seed:18446744073709551615
cpu write A+1M+4K len=4095 fill=0
cpu read A len=8 expect=u64:18446744073709551615
cpu read 0x7f0000001000 len=1 expect=255 -> SEGV
gpu write A len=2M fill=seed:4 dev=1 -> ok|EFAULT|ENOENT
gpu read A+4K expect=7 dev=0
gpu atomic A+8 count=1000000 dev=1
prefetch A len=2M to=vram dev=1
advise A preferred=dev3 atomic=default
evict dev=1 A+1M len=1M
remove_device dev=1
bind_bo A len=64K dev=0 -> EBUSY
mprotect A len=4K prot=rw -> EACCES|EPERM
madvise A len=8K dontneed
mremap A new=A2 size=8M dontunmap -> EINVAL|EAGAIN
concurrent seed=3 {
  gpu write A len=2M fill=1 -> ok|EFAULT
  munmap A+1M len=1M
  exit -> ok|EBUSY
}
expect residency A len=2M in=mixed dev=1
expect ranges != 0
expect stat vram_bytes <= 256M
expect chunk 0x7f0000000000 == 4K
fork child
process child
exit
";

/// Seeds of `scenario_parser`: the repository's scenarios (`tests/scenarios/`, which include
/// the examples) and a few hand-written texts.
pub fn scenario_parser() -> Vec<(String, Vec<u8>)> {
    let mut seeds = vec![
        ("everything.svm".to_owned(), EVERYTHING.as_bytes().to_vec()),
        (
            "error-size-suffix.svm".to_owned(),
            b"mmap A size=2X\n".to_vec(),
        ),
        (
            // The parser stops at the first error: one error per seed.
            "error-offset-missing.svm".to_owned(),
            b"mmap A size=2M\ngpu write A+ len=4K\n".to_vec(),
        ),
        (
            "error-fill-range.svm".to_owned(),
            b"mmap A size=2M\ngpu write A len=4K fill=300\n".to_vec(),
        ),
        (
            "error-expect.svm".to_owned(),
            b"mmap A size=2M\nexpect ranges==1\n".to_vec(),
        ),
        (
            "crlf-bom-tabs.svm".to_owned(),
            "\u{feff}mmap A\tsize=0x10K # c\r\nconcurrent seed=0 {\r\n  munmap A\r\n}\r\n"
                .as_bytes()
                .to_vec(),
        ),
    ];
    let dir = crate::scenario_dir();
    for f in crate::svm_files(&dir) {
        let rel = f.strip_prefix(&dir).unwrap_or(&f);
        // Generated from the unmap_sequences seeds below; they would make the two sets of seeds
        // depend on each other.
        if rel.starts_with(TRACE_DIR) {
            continue;
        }
        let name = rel.to_string_lossy().replace(['/', '\\'], "-");
        if let Ok(bytes) = std::fs::read(&f) {
            seeds.push((name, bytes));
        }
    }
    seeds
}

/// The directory, under `tests/scenarios/`, of the scenarios recorded from the
/// `unmap_sequences` seeds ([`unmap_traces`]).
pub const TRACE_DIR: &str = "fuzz-seeds";

/// `(file name, text)` of the scenario each `unmap_sequences` seed runs, with every outcome the
/// simulator gives today. Committed under `tests/scenarios/fuzz-seeds/`: the repository's
/// scenario test replays them (outcomes, integrity, leaks), and `tests/tests/fuzz_corpus.rs`
/// checks that they are still what the seeds produce, so any change of behaviour on a seed is
/// seen and has to be accepted by regenerating them (`GPUSVM_WRITE_SEEDS=1`).
pub fn unmap_traces() -> Vec<(String, String)> {
    unmap_sequences()
        .into_iter()
        .map(|(name, bytes)| {
            let program = super::unmap::Program::decode(&bytes);
            let text = format!(
                "# Recorded from fuzz/corpus/unmap_sequences/{name} by tests/src/fuzzing/seeds.rs;\n\
                 # regenerate with GPUSVM_WRITE_SEEDS=1 cargo test -p gpusvm-tests --test fuzz_corpus\n{}",
                super::unmap::trace(&program)
            );
            (format!("{name}.svm"), text)
        })
        .collect()
}

/// Writes the seeds of `target` into `dir`, replacing files of the same name.
///
/// # Errors
///
/// The I/O error.
pub fn write(target: &str, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in for_target(target) {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
