//! A state-machine test of the whole simulator against a per-page reference model
//! (proptest-state-machine).
//!
//! The reference knows, for a few fixed region slots, which pages are mapped, their protection
//! and the byte each page holds (every write fills a whole page with one byte). Random sequences
//! of mmap, munmap (partial), mprotect, madvise(DONTNEED), CPU and GPU reads and writes,
//! prefetch, eviction and range-split mode run against both. After every step:
//!
//! - outcomes agree with the model (SEGV where the CPU would fault; ENOENT/EPERM/EFAULT where
//!   the GPU fault must fail; success elsewhere) and successful reads return the model's bytes;
//! - SVM ranges never overlap and cover only mapped memory;
//! - every valid range's DMA entries reach the frames the CPU page tables map now;
//! - accounting balances: the live DMA mappings are exactly the system entries of the pages;
//! - no DMA misuse was recorded; and at the end every process exits and nothing leaks.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

use gpusvm_sim::config::SimConfig;
use gpusvm_sim::mm::{MapKind, Prot};
use gpusvm_sim::world::{OpError, World};

const PAGE: u64 = 4096;
const BASE: u64 = 0x20_0000_0000;
const SLOT: u64 = 8 << 20;
const SLOTS: usize = 3;

fn slot_base(slot: usize) -> u64 {
    BASE + slot as u64 * SLOT
}

#[derive(Clone, Debug, PartialEq)]
struct RefPage {
    prot: Prot,
    byte: u8,
}

#[derive(Clone, Debug, Default)]
struct RefState {
    /// Page index (global) → page.
    pages: BTreeMap<u64, RefPage>,
    split: bool,
}

impl RefState {
    fn page(&self, slot: usize, page: u64) -> Option<&RefPage> {
        self.pages.get(&(slot_base(slot) / PAGE + page))
    }
    fn slot_mapped(&self, slot: usize) -> bool {
        let first = slot_base(slot) / PAGE;
        self.pages
            .range(first..first + SLOT / PAGE)
            .next()
            .is_some()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Mmap {
        slot: usize,
        pages: u64,
        thp: bool,
    },
    Munmap {
        slot: usize,
        first: u64,
        n: u64,
    },
    Mprotect {
        slot: usize,
        first: u64,
        n: u64,
        prot: Prot,
    },
    Dontneed {
        slot: usize,
        first: u64,
        n: u64,
    },
    CpuWrite {
        slot: usize,
        page: u64,
        byte: u8,
    },
    CpuRead {
        slot: usize,
        page: u64,
    },
    GpuWrite {
        slot: usize,
        first: u64,
        n: u64,
        byte: u8,
    },
    GpuRead {
        slot: usize,
        first: u64,
        n: u64,
    },
    Prefetch {
        slot: usize,
        to_vram: bool,
    },
    Evict,
    Split(bool),
}

struct RefMachine;

fn prot_strategy() -> impl Strategy<Value = Prot> {
    prop_oneof![4 => Just(Prot::Rw), 1 => Just(Prot::R), 1 => Just(Prot::None)]
}

impl ReferenceStateMachine for RefMachine {
    type State = RefState;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<RefState> {
        any::<bool>()
            .prop_map(|split| RefState {
                pages: BTreeMap::new(),
                split,
            })
            .boxed()
    }

    fn transitions(_state: &RefState) -> BoxedStrategy<Op> {
        let slot = 0..SLOTS;
        let page = 0u64..768;
        let n = 1u64..200;
        prop_oneof![
            3 => (slot.clone(), 1u64..768, any::<bool>())
                .prop_map(|(slot, pages, thp)| Op::Mmap { slot, pages, thp }),
            2 => (slot.clone(), page.clone(), n.clone())
                .prop_map(|(slot, first, n)| Op::Munmap { slot, first, n }),
            1 => (slot.clone(), page.clone(), n.clone(), prot_strategy())
                .prop_map(|(slot, first, n, prot)| Op::Mprotect { slot, first, n, prot }),
            1 => (slot.clone(), page.clone(), n.clone())
                .prop_map(|(slot, first, n)| Op::Dontneed { slot, first, n }),
            3 => (slot.clone(), page.clone(), any::<u8>())
                .prop_map(|(slot, page, byte)| Op::CpuWrite { slot, page, byte }),
            2 => (slot.clone(), page.clone()).prop_map(|(slot, page)| Op::CpuRead { slot, page }),
            4 => (slot.clone(), page.clone(), n.clone(), any::<u8>())
                .prop_map(|(slot, first, n, byte)| Op::GpuWrite { slot, first, n, byte }),
            4 => (slot.clone(), page.clone(), n.clone())
                .prop_map(|(slot, first, n)| Op::GpuRead { slot, first, n }),
            1 => (slot, any::<bool>()).prop_map(|(slot, to_vram)| Op::Prefetch { slot, to_vram }),
            1 => Just(Op::Evict),
            1 => any::<bool>().prop_map(Op::Split),
        ]
        .boxed()
    }

    fn preconditions(state: &RefState, op: &Op) -> bool {
        match op {
            Op::Mmap { slot, .. } => !state.slot_mapped(*slot),
            Op::Prefetch { slot, .. } => {
                // Prefetch works on a whole, fully mapped, accessible region.
                let first = slot_base(*slot) / PAGE;
                let pages: Vec<_> = state.pages.range(first..first + SLOT / PAGE).collect();
                !pages.is_empty()
                    && pages.iter().all(|(_, p)| p.prot == Prot::Rw)
                    && pages.windows(2).all(|w| *w[1].0 == *w[0].0 + 1)
                    && *pages[0].0 == first
            }
            _ => true,
        }
    }

    fn apply(mut state: RefState, op: &Op) -> RefState {
        let range = |slot: usize, first: u64, n: u64| {
            let a = slot_base(slot) / PAGE + first;
            a..a + n
        };
        match op {
            Op::Mmap { slot, pages, .. } => {
                for p in range(*slot, 0, *pages) {
                    state.pages.insert(
                        p,
                        RefPage {
                            prot: Prot::Rw,
                            byte: 0,
                        },
                    );
                }
            }
            Op::Munmap { slot, first, n } => {
                for p in range(*slot, *first, *n) {
                    state.pages.remove(&p);
                }
            }
            Op::Mprotect {
                slot,
                first,
                n,
                prot,
            } => {
                // mprotect fails (ENOMEM) unless the whole span is mapped.
                let r = range(*slot, *first, *n);
                if r.clone().all(|p| state.pages.contains_key(&p)) {
                    for p in r {
                        if let Some(pg) = state.pages.get_mut(&p) {
                            pg.prot = *prot;
                        }
                    }
                }
            }
            Op::Dontneed { slot, first, n } => {
                let r = range(*slot, *first, *n);
                if r.clone().all(|p| state.pages.contains_key(&p)) {
                    for p in r {
                        if let Some(pg) = state.pages.get_mut(&p) {
                            pg.byte = 0;
                        }
                    }
                }
            }
            Op::CpuWrite { slot, page, byte } => {
                if let Some(pg) = state.pages.get_mut(&range(*slot, *page, 1).start) {
                    if pg.prot == Prot::Rw {
                        pg.byte = *byte;
                    }
                }
            }
            Op::GpuWrite {
                slot,
                first,
                n,
                byte,
            } => {
                // Pages are written in order until the first one the GPU may not write.
                for p in range(*slot, *first, *n) {
                    match state.pages.get_mut(&p) {
                        Some(pg) if pg.prot == Prot::Rw => pg.byte = *byte,
                        _ => break,
                    }
                }
            }
            Op::Split(on) => state.split = *on,
            Op::CpuRead { .. } | Op::GpuRead { .. } | Op::Prefetch { .. } | Op::Evict => {}
        }
        state
    }
}

struct SimTest;

fn page_buf(byte: u8) -> Vec<u8> {
    vec![byte; PAGE as usize]
}

/// The model's outcome of a GPU access to pages `first..first + n` of `slot`: the error of the
/// first page that refuses it.
fn gpu_expect(
    before: &RefState,
    slot: usize,
    first: u64,
    n: u64,
    write: bool,
) -> Result<(), &'static str> {
    (first..first + n).try_for_each(|page| match before.page(slot, page) {
        None => Err("ENOENT"),
        // find_or_insert refuses a write fault on a VMA without VM_WRITE.
        Some(pg) if write && pg.prot != Prot::Rw => Err("EPERM"),
        // A read fault gets its range, but HMM cannot fault an unreadable page.
        Some(pg) if pg.prot == Prot::None => Err("EFAULT"),
        Some(_) => Ok(()),
    })
}

fn errno_name(e: &OpError) -> String {
    e.to_string()
}

impl StateMachineTest for SimTest {
    type SystemUnderTest = (World, RefState);
    type Reference = RefMachine;

    fn init_test(ref_state: &RefState) -> (World, RefState) {
        let cfg = SimConfig {
            vram: 16 << 20,
            devices: 2,
            range_split: ref_state.split,
            ..SimConfig::default()
        };
        let w = World::new(cfg).expect("valid config");
        (w, ref_state.clone())
    }

    fn apply((world, before): (World, RefState), after: &RefState, op: Op) -> (World, RefState) {
        let addr = |slot: usize, page: u64| slot_base(slot) + page * PAGE;
        match &op {
            Op::Mmap { slot, pages, thp } => {
                let kind = if *thp { MapKind::Thp } else { MapKind::Anon };
                let name = format!("s{slot}");
                world
                    .mmap(
                        &name,
                        pages * PAGE,
                        None,
                        Some(addr(*slot, 0)),
                        Prot::Rw,
                        kind,
                    )
                    .expect("mmap at a free slot");
            }
            Op::Munmap { slot, first, n } => {
                world.munmap(addr(*slot, *first), n * PAGE).expect("munmap");
            }
            Op::Mprotect {
                slot,
                first,
                n,
                prot,
            } => {
                let r = world.mprotect(addr(*slot, *first), n * PAGE, *prot);
                let all_mapped = (0..*n).all(|i| before.page(*slot, first + i).is_some());
                assert_eq!(r.is_ok(), all_mapped, "mprotect: {r:?}");
            }
            Op::Dontneed { slot, first, n } => {
                let r = world.madvise_dontneed(addr(*slot, *first), n * PAGE);
                let all_mapped = (0..*n).all(|i| before.page(*slot, first + i).is_some());
                assert_eq!(r.is_ok(), all_mapped, "madvise: {r:?}");
            }
            Op::CpuWrite { slot, page, byte } => {
                let r = world.cpu_write(addr(*slot, *page), &page_buf(*byte));
                let ok = before
                    .page(*slot, *page)
                    .is_some_and(|p| p.prot == Prot::Rw);
                assert_eq!(r.is_ok(), ok, "cpu write: {r:?}");
                if !ok {
                    assert_eq!(r, Err(OpError::Segv));
                }
            }
            Op::CpuRead { slot, page } => {
                let mut buf = page_buf(0xee);
                let r = world.cpu_read(addr(*slot, *page), &mut buf);
                match before.page(*slot, *page) {
                    Some(pg) if pg.prot != Prot::None => {
                        assert_eq!(r, Ok(()), "cpu read of a readable page");
                        assert!(buf.iter().all(|b| *b == pg.byte), "cpu read: wrong bytes");
                    }
                    _ => assert_eq!(r, Err(OpError::Segv)),
                }
            }
            Op::GpuWrite {
                slot,
                first,
                n,
                byte,
            } => {
                let dev = (*first % 2) as u32;
                let expected = gpu_expect(&before, *slot, *first, *n, true);
                let data = vec![*byte; (n * PAGE) as usize];
                let r = world.gpu_write(dev, addr(*slot, *first), &data);
                match (expected, &r) {
                    (Ok(()), Ok(())) => {}
                    (Err(name), Err(e)) => assert_eq!(errno_name(e), name, "gpu write"),
                    _ => panic!("gpu write: model says {expected:?}, simulator {r:?}"),
                }
            }
            Op::GpuRead { slot, first, n } => {
                let dev = (*first % 2) as u32;
                let expected = gpu_expect(&before, *slot, *first, *n, false);
                let mut data = vec![0u8; (n * PAGE) as usize];
                let r = world.gpu_read(dev, addr(*slot, *first), &mut data);
                match (expected, &r) {
                    (Ok(()), Ok(())) => {
                        for i in 0..*n {
                            let want = before.page(*slot, first + i).map_or(0, |p| p.byte);
                            let got = &data[(i * PAGE) as usize..((i + 1) * PAGE) as usize];
                            assert!(got.iter().all(|b| *b == want), "gpu read: wrong bytes");
                        }
                    }
                    (Err(name), Err(e)) => assert_eq!(errno_name(e), name, "gpu read"),
                    _ => panic!("gpu read: model says {expected:?}, simulator {r:?}"),
                }
            }
            Op::Prefetch { slot, to_vram } => {
                let first = slot_base(*slot) / PAGE;
                let n = before.pages.range(first..first + SLOT / PAGE).count() as u64;
                world
                    .prefetch(0, addr(*slot, 0), n * PAGE, *to_vram)
                    .expect("prefetch of an accessible region");
            }
            Op::Evict => world.evict(None, None).expect("eviction"),
            Op::Split(on) => {
                for p in world.processes() {
                    if let Some(svm) = p.vm.lock().as_mut() {
                        svm.set_range_split(*on);
                    }
                }
            }
        }
        world.settle();
        (world, after.clone())
    }

    fn check_invariants((world, _): &(World, RefState), _ref_state: &RefState) {
        assert!(world.dma_errors().is_empty(), "{:?}", world.dma_errors());
        let problems = gpusvm_tests::invariants::check_world(world);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    fn teardown((world, _): (World, RefState), _ref_state: RefState) {
        let leaks = world.teardown();
        assert!(leaks.is_empty(), "leaks: {leaks:?}");
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        max_shrink_iters: 2048,
        .. ProptestConfig::default()
    })]

    #[test]
    fn simulator_matches_the_page_model(sequential 1..32 => SimTest);
}
