//! Range splitting on partial unmap: the surviving part of a range stays mapped.
//!
//! Upstream destroys a range when any part of it is unmapped (brief §9 item 1); the driver then
//! evicts its device pages and the GPU refaults everything that survived. AMD KFD and NVIDIA UVM
//! split instead, and so does this core when [`crate::Svm::set_range_split`] is on.
//!
//! # Two phases
//!
//! 1. **In the notifier** ([`crate::Invalidation::unmap_range`], lock held for writing, no
//!    allocation): the DMA entries overlapping the unmapped pages are unmapped and replaced by
//!    *holes* that keep their order (so later entries keep their page offsets); the range gets
//!    [`RangeFlags::SPLIT_PENDING`] and is queued for the garbage collector. The GPU keeps its
//!    PTEs for the surviving pages, which still map live DMA addresses. Commits on the range are
//!    refused ([`crate::Svm::range_pages_valid`] is false, `get_pages` returns `EAGAIN`) until
//!    the split, so nothing can map freed pages.
//! 2. **In the garbage collector** ([`Svm::split_range`], driver lock): with the mmap read lock
//!    held — which keeps further unmaps out — the surviving spans are the parts of the range
//!    still covered by VMAs. Each is re-cut into the largest aligned chunks that fit
//!    ([`recut`]). Every piece, its driver payload ([`SvmDriver::split_data`]) and its DMA
//!    arrays are allocated *before* the notifier lock is taken. Under the lock, each piece takes
//!    the live entries that lie wholly inside it; a piece whose pages are all covered by moved
//!    live entries of a valid pages object is valid at once — no refault, no migration, device
//!    pages stay where they are (their allocation tracker is untouched; the pieces share it).
//!    Entries that straddle two pieces (a huge mapping cut by the re-cut) are unmapped, and so
//!    are the entries of incomplete pieces, which refault. Then the old range leaves the tree and
//!    the pieces enter it.
//!
//! If an allocation fails, nothing has changed: the caller removes the range as upstream does.
//!
//! # Policy
//!
//! Pieces are chunk-aligned whenever the chunk list allows: at each position the largest
//! configured chunk that is aligned there and fits in the surviving span is taken. If the
//! smallest configured chunk is larger than the page and does not fit the remainder, the
//! remainder becomes one unaligned piece (page-aligned) rather than being dropped.

use intrusive_collections::LinkedList;

use crate::addr::Span;
use crate::allocator::KArray;
use crate::dma::{DmaEntry, Protocol};
use crate::driver::SvmDriver;
use crate::error::{code, Result};
use crate::flags::{PagesFlags, RangeFlags};
use crate::mm::{Mm, MmUser};
use crate::pages::{unmap_entries, PagesState, StateGuard, SvmPages};
use crate::range::{Range, RangeGcAdapter, RangeRef};
use crate::svm::Svm;

/// The pieces [`recut`] cuts a span into.
#[derive(Clone, Debug)]
pub struct Recut<'a> {
    pos: u64,
    end: u64,
    chunks: &'a [u64],
}

/// Cuts `span` into the largest aligned chunks of `chunks` (descending sizes), left to right.
pub fn recut(span: Span, chunks: &[u64]) -> Recut<'_> {
    Recut {
        pos: span.start(),
        end: span.end(),
        chunks,
    }
}

impl Iterator for Recut<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.pos >= self.end {
            return None;
        }
        let pos = self.pos;
        let fits =
            |c: u64| c != 0 && pos % c == 0 && pos.checked_add(c).is_some_and(|e| e <= self.end);
        let len = self
            .chunks
            .iter()
            .copied()
            .find(|&c| fits(c))
            // The unaligned remainder policy (see the module docs).
            .unwrap_or(self.end - pos);
        self.pos = pos.saturating_add(len);
        Span::new(pos, self.pos).ok()
    }
}

/// Moves the live entries of `old` lying wholly inside pages `[first, first + npages)` into
/// `new` (whose array is reserved). `new` becomes valid if `valid` (the old pages were) and the
/// moved entries cover every page; otherwise the moved entries are unmapped and `new` stays
/// empty.
fn move_entries<D: SvmDriver>(
    ost: &mut StateGuard<'_, D>,
    new: &SvmPages<D>,
    nst: &mut StateGuard<'_, D>,
    first: usize,
    npages: usize,
    valid: bool,
) {
    let end = first.saturating_add(npages);
    let (moved, complete, pagemap) = ost.with(|o: &mut PagesState<D>| {
        let mut moved = 0usize;
        let mut covered = 0usize;
        let mut complete = valid;
        let mut has_device = false;
        nst.with(|n: &mut PagesState<D>| {
            let (Some(src), Some(dst)) = (o.dma.as_mut(), n.dma.as_mut()) else {
                complete = false;
                return;
            };
            let mut offset = 0usize;
            for e in src.iter_mut().take(o.nentries) {
                let len = 1usize << e.order();
                let inside = offset >= first && offset.saturating_add(len) <= end;
                let overlaps = offset < end && first < offset.saturating_add(len);
                if inside && e.is_mapped() {
                    if let Some(slot) = dst.get_mut(moved) {
                        *slot = *e;
                        *e = DmaEntry::NONE;
                        moved += 1;
                        covered = covered.saturating_add(len);
                        has_device |= slot.proto() != Protocol::SYSTEM;
                    } else {
                        complete = false;
                    }
                } else if overlaps {
                    // A hole, or an entry straddling the piece boundary.
                    complete = false;
                }
                offset = offset.saturating_add(len);
            }
        });
        let pagemap = if has_device { o.pagemap.clone() } else { None };
        (moved, complete && covered == npages, pagemap)
    });
    let dev = new.dev();
    nst.with(|n| {
        if complete && moved > 0 {
            n.nentries = moved;
            n.npages = npages;
            n.pagemap = pagemap;
        } else if let Some(dst) = n.dma.as_mut() {
            let moved_entries = dst.get_mut(..moved).unwrap_or_default();
            unmap_entries::<D>(dev, pagemap.as_ref(), moved_entries);
        }
    });
    if complete && moved > 0 {
        let mut flags = PagesFlags::HAS_DMA_MAPPING;
        if nst.with(|n| n.pagemap.is_some()) {
            flags |= PagesFlags::HAS_DEVMEM_PAGES;
        }
        // INVARIANT: the entries and pagemap were stored above.
        new.publish(flags);
    }
}

impl<D: SvmDriver> Svm<D> {
    /// Splits a range marked [`RangeFlags::SPLIT_PENDING`] into ranges covering what is still
    /// mapped of it (see the module docs). Returns the number of pieces (0 if nothing of the
    /// range is mapped any more; the range is gone then too).
    ///
    /// # Errors
    ///
    /// `EINVAL` if the range is foreign, removed or not pending a split; `EFAULT` if it was
    /// fully unmapped meanwhile or the mm is exiting; `ENOMEM` or the driver's `split_data`
    /// error. On error nothing changed: remove the range instead (upstream behaviour).
    pub fn split_range(&mut self, range: &Range<D>) -> Result<usize> {
        // SAFETY: `sh` is not used after this method returns.
        let sh = unsafe { self.shared_state() };
        let flags = range.flags();
        if range.svm_id() != sh.id()
            || flags.contains(RangeFlags::REMOVED)
            || !flags.contains(RangeFlags::SPLIT_PENDING)
        {
            return Err(code::EINVAL);
        }
        if flags.contains(RangeFlags::UNMAPPED) {
            return Err(code::EFAULT);
        }
        // SAFETY: `&mut self` is the driver lock.
        let notifier = unsafe { range.notifier() }.ok_or(code::EINVAL)?;
        let mm = sh.mm().ok_or(code::EINVAL)?;
        let chunks = self.chunk_sizes();
        let page = sh.page_shift();
        let user = MmUser::get(mm).ok_or(code::EFAULT)?;
        let lock = user.read_lock();

        // Phase 2a: allocate every piece, unpublished, on a local list (through `gc_link`).
        let mut pieces: LinkedList<RangeGcAdapter<D>> = LinkedList::new(RangeGcAdapter::new());
        let built = (|| -> Result {
            let mut pos = range.start();
            while pos < range.end() {
                let Some(v) = mm.find_vma_intersection(&lock, pos, range.end()) else {
                    break;
                };
                let surviving = Span::new(v.start.max(pos), v.end.min(range.end()))?;
                for piece in recut(surviving, chunks) {
                    let data = sh.driver().split_data(range.data(), piece)?;
                    let r = Range::alloc(
                        piece,
                        flags & RangeFlags::MIGRATE_DEVMEM,
                        notifier,
                        sh.id(),
                        data,
                        sh.alloc().clone(),
                    )?;
                    let npages =
                        usize::try_from(page.pages(piece.len())).map_err(|_| code::ENOMEM)?;
                    let mut reserved = Ok(());
                    D::for_each_pages(r.data(), &mut |p| {
                        if reserved.is_ok() {
                            reserved = p.reserve(npages, sh.alloc());
                        }
                    });
                    pieces.push_back(r.into_tree());
                    reserved?;
                }
                pos = surviving.end();
            }
            Ok(())
        })();
        if let Err(e) = built {
            while let Some(p) = pieces.pop_front() {
                // SAFETY: `p` came from `into_tree` and is unlinked by `pop_front`.
                drop(unsafe { RangeRef::from_tree(p) });
            }
            return Err(e);
        }

        // Phase 2b: under the notifier lock, move the entries and swap the tree nodes (the
        // removal protocol of `range_remove`, with the pieces taking the range's place).
        let (npieces, empty) = self.replace_range(range, &mut pieces, |nl, pieces| {
            let mut device = 0usize;
            D::for_each_pages(range.data(), &mut |old| {
                let mut ost = old.lock_state(nl);
                let valid = old.flags().is_valid();
                for piece in pieces.iter() {
                    let Some(new) = nth_pages::<D>(piece.data(), device) else {
                        continue;
                    };
                    let first = page.pages(piece.start().saturating_sub(range.start()));
                    let npages = page.pages(piece.size());
                    let (Ok(first), Ok(npages)) = (usize::try_from(first), usize::try_from(npages))
                    else {
                        continue;
                    };
                    // The piece is unpublished: nobody else holds its state lock.
                    let mut nst = new.lock_state(nl);
                    move_entries(&mut ost, new, &mut nst, first, npages, valid);
                }
                // Whatever did not move (straddling entries, holes) goes with the old range.
                old.unmap_locked(&mut ost);
                device += 1;
            });
        });
        drop(lock);
        drop(user);
        if let (0, Some(notifier)) = (npieces, empty) {
            // SAFETY: In our tree and empty.
            unsafe { self.free_notifier(notifier) };
        }
        Ok(npieces)
    }
}

/// The `index`-th pages object of a payload.
fn nth_pages<D: SvmDriver>(data: &D::RangeData, index: usize) -> Option<&SvmPages<D>> {
    let mut i = 0usize;
    let mut found = None;
    D::for_each_pages(data, &mut |p| {
        if i == index {
            found = Some(p);
        }
        i += 1;
    });
    found
}

impl<D: SvmDriver> SvmPages<D> {
    /// Allocates the DMA array of a pages object nobody else can reach yet, for `npages`.
    pub(crate) fn reserve(&self, npages: usize, alloc: &D::Alloc) -> Result {
        let mut st = self.lock_state_unpublished();
        let need = st.with(|s| s.dma.as_ref().is_none_or(|d| d.len() < npages));
        if need {
            let array = KArray::try_new(npages, DmaEntry::NONE, alloc.clone())?;
            st.with(|s| s.dma = Some(array));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    const K: u64 = 1024;
    const M: u64 = 1024 * K;

    fn cut(s: u64, e: u64, chunks: &[u64]) -> Vec<(u64, u64)> {
        recut(Span::new(s, e).unwrap(), chunks)
            .map(|p| (p.start(), p.len()))
            .collect()
    }

    #[test]
    fn recut_takes_the_largest_aligned_chunks() {
        let chunks = [2 * M, 64 * K, 4 * K];
        // The second half of a 2M range: one 1M span, cut into 16 × 64K.
        let got = cut(M, 2 * M, &chunks);
        assert_eq!(got.len(), 16);
        assert!(got.iter().all(|&(s, l)| l == 64 * K && s % (64 * K) == 0));
        // A middle unmap leaves [0, 68K) and [72K, 2M): 64K + 4K, then 4K×14 + 64K×30... etc.
        let left = cut(0, 68 * K, &chunks);
        assert_eq!(left, [(0, 64 * K), (64 * K, 4 * K)]);
        let right = cut(72 * K, 2 * M, &chunks);
        assert_eq!(right.first(), Some(&(72 * K, 4 * K)));
        assert_eq!(right.iter().map(|p| p.1).sum::<u64>(), 2 * M - 72 * K);
        assert!(right.iter().all(|&(s, l)| s % l == 0));
        // Without a page-sized chunk, a remainder stays one unaligned piece.
        assert_eq!(cut(0, 68 * K, &[64 * K]), [(0, 64 * K), (64 * K, 4 * K)]);
    }
}
