//! The copy planner: which copy-engine calls a migration issues.
//!
//! C source: [`drivers/gpu/drm/drm_pagemap.c`] (`drm_pagemap_migrate_range`, the
//! `migrate_range_loc` cursor; brief §6.4), and Xe's `xe_svm_copy`, which splits a call into
//! device-contiguous chunks of at most 8 MiB.
//!
//! # Problem
//!
//! A migration has one slot per page. Each slot says who copies it ([`Copier`]: nobody for a
//! hole or a page that stays, the local device, or a peer device), the device-side page frame
//! (the destination for local copies, the source for peer copies), and the order of the entry
//! (`1 << order` pages handled as one unit, e.g. a large folio; its tail slots are ignored).
//!
//! A copy call moves one run of pages that share a copier and are physically contiguous on the
//! device, of at most `max_pages` pages (an entry larger than that is copied alone).
//!
//! # Algorithm and why it is optimal
//!
//! Walk the slots once, entry by entry. Start a batch at the first entry that needs a copy and
//! extend it while the next entry has the same copier, continues the device-side run, and still
//! fits; otherwise emit and start again.
//!
//! Every valid plan must cut wherever the copier changes, a hole appears, or device contiguity
//! breaks, so the slots fall into maximal runs that are independent. Inside a run, entries are
//! indivisible items in a fixed order and a batch is a contiguous group of total size at most
//! `max_pages` (or one oversized item): greedy "take as much as fits" produces the fewest groups
//! (exchange argument: the i-th greedy batch ends no earlier than the i-th batch of any valid
//! plan). The test `plan_is_optimal` checks the count against a brute-force dynamic program.
//!
//! The planner is an iterator over the input slice: it allocates nothing.

/// Who copies a page slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Copier {
    /// No copy: a hole, a page that was not collected, or a page that stays where it is.
    Skip,
    /// The destination device's copy engine (`copy_to_devmem`, or `copy_to_ram` for the CPU
    /// fault and eviction paths).
    Local,
    /// A peer device's copy engine, identified by its pagemap (`source_peer_migrates`).
    Peer(usize),
}

/// The facts of one page slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFact {
    /// Who copies.
    pub copier: Copier,
    /// The device-side page frame of the slot.
    pub device_pfn: u64,
    /// The entry covers `1 << order` slots starting here.
    pub order: u32,
}

impl PageFact {
    /// A slot nobody copies.
    pub const SKIP: PageFact = PageFact {
        copier: Copier::Skip,
        device_pfn: 0,
        order: 0,
    };
}

/// One copy call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Who copies.
    pub copier: Copier,
    /// First slot.
    pub first: usize,
    /// Number of slots (pages) covered.
    pub npages: usize,
    /// Device-side page frame of the first slot; the batch covers `npages` frames from here.
    pub device_pfn: u64,
}

/// Iterator over the batches of a migration.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    facts: &'a [PageFact],
    next: usize,
    max_pages: usize,
}

/// Plans the copies for `facts` with batches of at most `max_pages` pages (at least one).
pub fn plan(facts: &[PageFact], max_pages: usize) -> Plan<'_> {
    Plan {
        facts,
        next: 0,
        max_pages: max_pages.max(1),
    }
}

impl Plan<'_> {
    /// Number of slots the entry at `i` covers, clamped to the input.
    fn step(&self, i: usize, fact: &PageFact) -> usize {
        let size = 1usize.checked_shl(fact.order).unwrap_or(usize::MAX);
        size.min(self.facts.len().saturating_sub(i)).max(1)
    }
}

impl Iterator for Plan<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        // Skip holes.
        let (first, head) = loop {
            let i = self.next;
            let fact = *self.facts.get(i)?;
            let step = self.step(i, &fact);
            if fact.copier != Copier::Skip {
                break (i, fact);
            }
            self.next = i.saturating_add(step);
        };
        let mut npages = self.step(first, &head);
        let mut i = first.saturating_add(npages);
        while let Some(fact) = self.facts.get(i).copied() {
            let step = self.step(i, &fact);
            let contiguous = u64::try_from(npages)
                .ok()
                .and_then(|n| head.device_pfn.checked_add(n))
                == Some(fact.device_pfn);
            let fits = npages.saturating_add(step) <= self.max_pages;
            if fact.copier != head.copier || !contiguous || !fits {
                break;
            }
            npages = npages.saturating_add(step);
            i = i.saturating_add(step);
        }
        self.next = i;
        Some(Batch {
            copier: head.copier,
            first,
            npages,
            device_pfn: head.device_pfn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn local(pfn: u64) -> PageFact {
        PageFact {
            copier: Copier::Local,
            device_pfn: pfn,
            order: 0,
        }
    }

    #[test]
    fn contiguous_run_is_one_call() {
        let facts: Vec<_> = (0..512).map(|i| local(1000 + i)).collect();
        let batches: Vec<_> = plan(&facts, 2048).collect();
        assert_eq!(
            batches,
            [Batch {
                copier: Copier::Local,
                first: 0,
                npages: 512,
                device_pfn: 1000
            }]
        );
    }

    #[test]
    fn splits_at_the_maximum_holes_and_discontinuities() {
        let mut facts: Vec<_> = (0..10).map(|i| local(100 + i)).collect();
        if let Some(f) = facts.get_mut(4) {
            *f = PageFact::SKIP;
        }
        if let Some(f) = facts.get_mut(7) {
            f.device_pfn = 5000;
        }
        let got: Vec<_> = plan(&facts, 3).map(|b| (b.first, b.npages)).collect();
        // [0..3) max, [3] before the hole, [5..7) up to the break, [7] alone (pfn 5000), [8..10).
        assert_eq!(got, [(0, 3), (3, 1), (5, 2), (7, 1), (8, 2)]);
    }

    #[test]
    fn large_entries_step_by_their_size_and_stay_whole() {
        // A 4-page entry, then single pages continuing the run, then an 8-page entry larger
        // than the maximum.
        let mut facts = std::vec![PageFact::SKIP; 16];
        facts[0] = PageFact {
            copier: Copier::Local,
            device_pfn: 0,
            order: 2,
        };
        facts[4] = local(4);
        facts[5] = local(5);
        facts[8] = PageFact {
            copier: Copier::Local,
            device_pfn: 8,
            order: 3,
        };
        let got: Vec<_> = plan(&facts, 6).map(|b| (b.first, b.npages)).collect();
        assert_eq!(got, [(0, 6), (8, 8)]);
    }

    #[test]
    fn copier_changes_cut_batches() {
        let facts = [
            local(0),
            PageFact {
                copier: Copier::Peer(7),
                device_pfn: 1,
                order: 0,
            },
            PageFact {
                copier: Copier::Peer(7),
                device_pfn: 2,
                order: 0,
            },
            local(3),
        ];
        let got: Vec<_> = plan(&facts, 100).map(|b| (b.copier, b.npages)).collect();
        assert_eq!(
            got,
            [(Copier::Local, 1), (Copier::Peer(7), 2), (Copier::Local, 1)]
        );
    }

    #[test]
    fn empty_and_all_holes() {
        assert_eq!(plan(&[], 8).count(), 0);
        assert_eq!(plan(&[PageFact::SKIP; 9], 8).count(), 0);
        // Orders that run past the end are clamped.
        let facts = [PageFact {
            copier: Copier::Local,
            device_pfn: 0,
            order: 40,
        }];
        assert_eq!(plan(&facts, 1).count(), 1);
    }

    /// The fewest batches any valid plan can use, by dynamic programming over entry boundaries.
    fn optimum(facts: &[PageFact], max_pages: usize) -> usize {
        // Entries (start, len) in walk order.
        let mut entries = Vec::new();
        let mut i = 0;
        while i < facts.len() {
            let f = facts[i];
            let step = (1usize << f.order.min(20)).min(facts.len() - i).max(1);
            entries.push((i, step, f));
            i += step;
        }
        let n = entries.len();
        let inf = usize::MAX / 2;
        let mut best = std::vec![inf; n + 1];
        best[n] = 0;
        for a in (0..n).rev() {
            let (_, _, fa) = entries[a];
            if fa.copier == Copier::Skip {
                best[a] = best[a + 1];
                continue;
            }
            // A batch covering entries a..=b.
            let mut pages = 0usize;
            for b in a..n {
                let (_, len, fb) = entries[b];
                let ok = fb.copier == fa.copier
                    && fb.device_pfn == fa.device_pfn + pages as u64
                    && (pages == 0 || pages + len <= max_pages);
                if !ok {
                    break;
                }
                pages += len;
                best[a] = best[a].min(1 + best[b + 1]);
            }
        }
        best[0]
    }

    fn arb_facts() -> impl Strategy<Value = Vec<PageFact>> {
        prop::collection::vec((0u8..4, 0u64..3, 0u32..3), 0..64).prop_map(|v| {
            let mut pfn = 0u64;
            v.into_iter()
                .map(|(c, jump, order)| {
                    pfn += jump * 7;
                    let copier = match c {
                        0 => Copier::Skip,
                        1 | 2 => Copier::Local,
                        _ => Copier::Peer(1),
                    };
                    let f = PageFact {
                        copier,
                        device_pfn: pfn,
                        order,
                    };
                    pfn += 1u64 << order;
                    f
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn plan_is_optimal(facts in arb_facts(), max_pages in 1usize..12) {
            let batches: Vec<_> = plan(&facts, max_pages).collect();
            prop_assert_eq!(batches.len(), optimum(&facts, max_pages));
            // Every non-skipped slot head is covered exactly once, and batches are valid.
            for b in &batches {
                prop_assert!(b.copier != Copier::Skip);
                let f = facts[b.first];
                let single = (1usize << f.order).min(facts.len() - b.first) == b.npages;
                prop_assert!(b.npages <= max_pages || single);
            }
            let covered: usize = batches.iter().map(|b| b.npages).sum();
            let mut needed = 0;
            let mut i = 0;
            while i < facts.len() {
                let step = (1usize << facts[i].order).min(facts.len() - i).max(1);
                if facts[i].copier != Copier::Skip { needed += step; }
                i += step;
            }
            prop_assert_eq!(covered, needed);
        }
    }
}
