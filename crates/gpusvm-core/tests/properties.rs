//! Property tests of the core (proptest), against the mock backend where state is involved.
//!
//! - Chunk selection against a brute-force oracle.
//! - `find_or_insert` keeps the range tree's invariants for random VMA layouts and faults.
//! - Range splitting: pieces tile exactly what survives, stay aligned, valid pages stay valid
//!   and keep mapping the same frames, and accounting balances.
//! - Hostile input: API calls with arbitrary addresses (near `u64::MAX`, zero-length spans,
//!   unaligned values) return errors and never panic.

#![cfg(not(loom))]

use proptest::prelude::*;

use gpusvm_core::chunk::{candidate, select_chunk, ChunkRequest, ChunkSizes};
use gpusvm_core::mock::{MockDriver, World};
use gpusvm_core::{code, Ctx, PageShift, Span, Svm, SvmConfig, VmaFlags};

const K: u64 = 1024;
const M: u64 = 1024 * K;
const PAGE: u64 = 4 * K;

// ------------------------------------------------------------------------- chunk selection

#[derive(Clone, Debug)]
struct Geometry {
    chunks: Vec<u64>,
    fault: u64,
    vma: Span,
    notifier: Span,
    gpuva: Span,
    threshold: u64,
    existing: Vec<Span>,
    absent_pages: Vec<u64>,
}

fn arb_geometry() -> impl Strategy<Value = Geometry> {
    let sizes = [4 * M, 2 * M, M, 256 * K, 64 * K, 16 * K, 8 * K];
    (
        proptest::sample::subsequence(sizes.to_vec(), 0..=4),
        0u64..(1 << 12),
        (0u64..2048, 1u64..2048),
        (0u64..2048, 1u64..4096),
        prop::sample::select(vec![0, 16 * K, 64 * K, 2 * M]),
        prop::collection::vec((0u64..1024, 0usize..4), 0..6),
        prop::collection::vec(0u64..1024, 0..8),
        any::<bool>(),
    )
        .prop_map(
            |(mut chunks, fault_page, (vs, vl), (gs, gl), threshold, ex, absent, top)| {
                chunks.push(PAGE);
                // Optionally place everything near the top of the address space.
                let base = if top {
                    u64::MAX - (64 * M) + 1
                } else {
                    0x4000_0000
                };
                let notifier = Span::from_len(base, 32 * M).unwrap();
                let page = |p: u64| base + p * PAGE;
                let vma =
                    Span::new(page(vs), page((vs + vl).min(8191)).max(page(vs) + PAGE)).unwrap();
                let gpuva =
                    Span::new(page(gs), page((gs + gl).min(8191)).max(page(gs) + PAGE)).unwrap();
                let fault = vma.start() + (fault_page * PAGE) % vma.len() + 123;
                let existing = ex
                    .into_iter()
                    .filter_map(|(p, ci)| {
                        let size = chunks.get(ci % chunks.len()).copied()?;
                        candidate(page(p), size)
                    })
                    .filter(|s| !s.contains(fault))
                    .collect::<Vec<_>>();
                // Keep existing ranges non-overlapping, as a tree's are.
                let mut kept: Vec<Span> = Vec::new();
                for s in existing {
                    if kept.iter().all(|k| !k.overlaps(&s)) {
                        kept.push(s);
                    }
                }
                Geometry {
                    chunks,
                    fault: fault.min(vma.end() - 1),
                    vma,
                    notifier,
                    gpuva,
                    threshold,
                    existing: kept,
                    absent_pages: absent.into_iter().map(page).collect(),
                }
            },
        )
}

/// Brute force: the acceptable sizes, by definition, without the implementation's search order.
fn oracle(g: &Geometry) -> Option<Span> {
    let mut best: Option<Span> = None;
    for &size in &g.chunks {
        let Some(span) = candidate(g.fault, size) else {
            continue;
        };
        let fits = g.vma.covers(&span) && g.notifier.covers(&span) && g.gpuva.covers(&span);
        let overlaps = g.existing.iter().any(|e| e.overlaps(&span));
        let present = g.absent_pages.iter().all(|p| !span.contains(*p));
        let acceptable = fits && (size == PAGE || (!overlaps && (size > g.threshold || present)));
        if acceptable && best.is_none_or(|b| span.len() > b.len()) {
            best = Some(span);
        }
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn chunk_selection_matches_the_oracle(g in arb_geometry()) {
        let req = ChunkRequest {
            fault: g.fault,
            vma: g.vma,
            notifier: g.notifier,
            gpuva: g.gpuva,
            page: PageShift::SZ_4K,
            check_pages_threshold: g.threshold,
        };
        let got = select_chunk(
            &req,
            &g.chunks,
            |s| g.existing.iter().any(|e| e.overlaps(&s)),
            |s| g.absent_pages.iter().all(|p| !s.contains(*p)),
        );
        prop_assert_eq!(got, oracle(&g));
        if let Some(s) = got {
            prop_assert!(s.contains(g.fault));
            prop_assert_eq!(s.start() % s.len(), 0);
            prop_assert!(g.vma.covers(&s) && g.notifier.covers(&s) && g.gpuva.covers(&s));
            prop_assert!(g.existing.iter().all(|e| !e.overlaps(&s)));
        }
        // The list the geometry uses is a valid chunk list.
        prop_assert!(ChunkSizes::new(&g.chunks, PageShift::SZ_4K, 32 * M).is_ok());
    }
}

// ------------------------------------------------------------------- find_or_insert invariants

const BASE: u64 = 0x4000_0000;

fn rw() -> VmaFlags {
    VmaFlags::READ | VmaFlags::WRITE | VmaFlags::ANONYMOUS
}

fn svm(w: &World, chunks: &'static [u64]) -> Svm<MockDriver> {
    let cfg = SvmConfig {
        name: "prop",
        mm_start: 0,
        mm_range: 1 << 47,
        notifier_size: 8 * M,
        chunk_sizes: chunks,
        page_shift: 12,
    };
    Svm::new(
        cfg,
        w.driver(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap()
}

fn all() -> Span {
    Span::new(0, u64::MAX).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Faults interleaved with CPU touches: with `check_pages_threshold` = 64K a fault next to
    /// absent pages gets a 4K range, and once the CPU has populated its neighbours a later
    /// fault could take a 64K or 2M chunk over it, so overlaps are reachable and must be
    /// avoided.
    #[test]
    fn find_or_insert_keeps_ranges_disjoint_aligned_and_inside_vmas(
        vmas in prop::collection::vec((0u64..4096, 1u64..600), 1..6),
        steps in prop::collection::vec((any::<bool>(), 0u64..4096, 1u64..64), 1..60),
    ) {
        let w = World::new(1);
        let mut layout: Vec<Span> = Vec::new();
        for (start, len) in vmas {
            let s = Span::from_len(BASE + start * PAGE, len * PAGE).unwrap();
            if layout.iter().all(|v| !v.overlaps(&s)) {
                w.mm.mmap(s.start(), s.end(), rw());
                layout.push(s);
            }
        }
        let mut s = svm(&w, &[2 * M, 64 * K, 4 * K]);
        let ctx = Ctx {
            check_pages_threshold: 64 * K,
            ..Ctx::default()
        };
        let gpuva = Span::new(0, 1 << 47).unwrap();
        for (touch, page, count) in steps {
            if touch {
                // The CPU populates `count` pages (those inside a VMA).
                for p in page..(page + count).min(4096) {
                    let a = BASE + p * PAGE;
                    if layout.iter().any(|v| v.contains(a)) {
                        w.mm.cpu_write(a, p);
                    }
                }
                continue;
            }
            let addr = BASE + page * PAGE + 7;
            let in_vma = layout.iter().any(|v| v.contains(addr));
            match s.range_find_or_insert(addr, gpuva, &ctx) {
                Ok(r) => {
                    prop_assert!(in_vma);
                    prop_assert!(r.span().contains(addr));
                    prop_assert!(layout.iter().any(|v| v.covers(&r.span())));
                    prop_assert_eq!(r.start() % r.size(), 0);
                }
                Err(e) => {
                    prop_assert!(!in_vma, "fault in a VMA failed with {e:?}");
                    prop_assert_eq!(e, code::ENOENT);
                }
            }
            let spans: Vec<Span> = s.ranges(all()).map(|r| r.span()).collect();
            prop_assert_eq!(spans.len(), s.num_ranges());
            for pair in spans.windows(2) {
                prop_assert!(pair[0].end() <= pair[1].start(), "overlap or disorder: {pair:?}");
            }
        }
        drop(s);
        prop_assert_eq!(w.alloc.live(), 0);
    }
}

// ---------------------------------------------------------------------------- range splitting

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn splits_tile_survivors_and_keep_valid_pages_valid(
        thp in any::<bool>(),
        unmaps in prop::collection::vec((0u64..512, 1u64..96), 1..5),
    ) {
        let w = World::new(2);
        w.mm.mmap(BASE, BASE + 2 * M, rw());
        if thp {
            w.mm.populate_thp(BASE);
        }
        let mut s = svm(&w, &[2 * M, 64 * K, 4 * K]);
        s.set_range_split(true);
        let ctx = Ctx::default();
        let gpuva = Span::new(0, 1 << 47).unwrap();
        let r = s.range_find_or_insert(BASE, gpuva, &ctx).unwrap();
        for p in &r.data().pages {
            s.range_get_pages(&r, p, &ctx).unwrap();
        }
        drop(r);
        let mut alive = vec![true; 512];
        for (first, len) in unmaps {
            let end = (first + len).min(512);
            w.mm.munmap(BASE + first * PAGE, BASE + end * PAGE);
            for a in &mut alive[first as usize..end as usize] {
                *a = false;
            }
            while let Some(r) = s.take_unmapped() {
                if s.split_range(&r).is_err() {
                    s.range_remove(&r);
                }
            }
            // Pieces tile exactly the surviving pages, in order, each aligned to its size.
            let mut covered = vec![false; 512];
            let nl = s.notifier_lock();
            let mut valid_pages = 0u64;
            for piece in s.ranges(all()) {
                prop_assert_eq!(piece.start() % piece.size(), 0);
                for pg in (piece.start() - BASE) / PAGE..(piece.end() - BASE) / PAGE {
                    prop_assert!(alive[pg as usize], "piece covers unmapped page {pg}");
                    prop_assert!(!covered[pg as usize]);
                    covered[pg as usize] = true;
                }
                if s.range_pages_valid(&nl, piece) {
                    valid_pages += piece.size() / PAGE;
                    // Valid pieces still map the frames the CPU maps.
                    for (d, pages) in piece.data().pages.iter().enumerate() {
                        let frames: Vec<u64> = s
                            .pages_entries(&nl, pages, |e| {
                                e.iter().map(|e| w.devs[d].pfn_of(e.addr()).unwrap_or(0)).collect()
                            })
                            .unwrap_or_default();
                        let mut addr = piece.start();
                        for pfn in frames {
                            prop_assert_eq!(Some(pfn), w.mm.pfn_at(addr));
                            addr += PAGE;
                        }
                    }
                }
            }
            drop(nl);
            prop_assert_eq!(&covered, &alive, "pieces must tile the survivors exactly");
            if !thp {
                // Order-0 entries never straddle: every surviving page keeps its mapping.
                let survivors = alive.iter().filter(|a| **a).count() as u64;
                prop_assert_eq!(valid_pages, survivors);
                prop_assert_eq!(w.dma_live() as u64, 2 * survivors);
            }
        }
        drop(s);
        prop_assert_eq!(w.dma_live(), 0);
        prop_assert_eq!(w.alloc.live(), 0);
    }
}

// ------------------------------------------------------------------------------ hostile input

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn hostile_addresses_return_errors(
        fault in any::<u64>(),
        near_top in any::<bool>(),
        start in any::<u64>(),
        len in any::<u64>(),
    ) {
        let fault = if near_top { u64::MAX - (fault % (8 * M)) } else { fault };
        let w = World::new(1);
        // A VMA at the very top of the address space.
        w.mm.mmap(u64::MAX - 4 * M + 1, u64::MAX - 4095, rw());
        let mut s = svm(&w, &[2 * M, 64 * K, 4 * K]);
        let ctx = Ctx::default();
        let gpuva = Span::new(0, u64::MAX).unwrap();
        // Never panics; outside the window it is EINVAL.
        let r = s.range_find_or_insert(fault, gpuva, &ctx);
        if fault >= 1 << 47 {
            prop_assert_eq!(r.as_ref().err().copied(), Some(code::EINVAL));
        }
        drop(r);
        // Spans: empty or overflowing ones are refused, never wrapped.
        match Span::from_len(start, len) {
            Ok(sp) => prop_assert!(sp.end() > sp.start()),
            Err(e) => prop_assert!(e == code::EINVAL || e == code::ERANGE),
        }
        if let Ok(sp) = Span::from_len(start, len) {
            let _ = s.has_mapping(sp);
            let _ = s.find_vma_start(sp);
            let pages = gpusvm_core::SvmPages::<MockDriver>::new(w.devs[0].clone());
            let n = gpusvm_core::IntervalNotifier::new();
            let r = s.get_pages(&pages, &w.mm, &n, sp, &ctx);
            if sp.start() % PAGE != 0 || sp.end() % PAGE != 0 {
                prop_assert_eq!(r, Err(code::EINVAL));
            }
            s.free_pages(&pages);
        }
        drop(s);
        prop_assert_eq!(w.alloc.live(), 0);
        prop_assert_eq!(w.dma_live(), 0);
    }
}
