//! MMU interval notifiers with the kernel's sequence protocol (`mm/mmu_notifier.c`).
//!
//! The mm keeps one sequence counter: even while no invalidation runs, odd while at least one
//! does (`invalidate_range_start` makes it odd, the last `invalidate_range_end` makes it even
//! again). A notifier's own sequence is odd: set to `counter − 1` when it is registered, and to
//! the counter's (odd) value by `set_seq` inside each invalidation that hits it. Hence:
//!
//! - `read_begin` returns the notifier's sequence, after waiting while the mm's current
//!   invalidation is one that hit this notifier (their values are equal exactly then);
//! - `read_retry(seq)` is true iff an invalidation hit the notifier since `read_begin`.
//!
//! An invalidation calls every registered notifier whose interval intersects it, without holding
//! the registry lock (the callbacks take the driver's notifier lock and may block). A running
//! callback pins its registration; `remove` unregisters and then waits for running callbacks, as
//! `mmu_interval_notifier_remove` does.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use gpusvm_core::{IntervalNotifier, MmuEvent, MmuRange, Owner, Result, Subscriber};

use crate::inject::Site;
use crate::mm::{ProcMm, SimMm};
use crate::sched;
use crate::shared::lock;

/// A subscriber pointer that may cross (simulated) threads.
#[derive(Clone, Copy)]
struct SubPtr(NonNull<dyn Subscriber>);
// SAFETY: Subscribers are `Sync`, and the registration protocol keeps them alive while called.
unsafe impl Send for SubPtr {}

struct Reg {
    id: u64,
    start: u64,
    end: u64,
    sub: SubPtr,
    /// Callbacks currently running on this registration.
    running: usize,
}

#[derive(Default)]
struct InvState {
    seq: u64,
    active: u32,
}

/// The notifiers registered on one mm.
pub struct Registry {
    regs: Mutex<Vec<Reg>>,
    inv: Mutex<InvState>,
    next_id: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            regs: Mutex::new(Vec::new()),
            inv: Mutex::new(InvState { seq: 2, active: 0 }),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Registry {
    /// Number of registered notifiers.
    pub fn len(&self) -> usize {
        lock(&self.regs).len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn seq(&self) -> u64 {
        lock(&self.inv).seq
    }
}

/// An invalidation in progress (`invalidate_range_start` done); dropping it runs
/// `invalidate_range_end`.
#[must_use = "the invalidation ends when this is dropped"]
pub struct Invalidating<'a> {
    registry: &'a Registry,
    /// Whether every callback accepted the invalidation.
    pub ok: bool,
}

impl Drop for Invalidating<'_> {
    fn drop(&mut self) {
        let mut inv = lock(&self.registry.inv);
        inv.active = inv.active.saturating_sub(1);
        if inv.active == 0 {
            inv.seq += 1; // even again
        }
    }
}

impl ProcMm {
    /// `invalidate_range_start`: calls every intersecting notifier. The caller changes the page
    /// tables while the returned value lives.
    pub fn invalidate_start(
        &self,
        start: u64,
        end: u64,
        event: MmuEvent,
        owner: Option<Owner>,
        blockable: bool,
    ) -> Invalidating<'_> {
        let reg = &self.notifiers;
        let cur = {
            let mut inv = lock(&reg.inv);
            if inv.active == 0 {
                inv.seq += 1; // odd
            }
            inv.active += 1;
            inv.seq
        };
        let targets: Vec<(u64, SubPtr)> = {
            let mut regs = lock(&reg.regs);
            regs.iter_mut()
                .filter(|r| r.start < end && start < r.end)
                .map(|r| {
                    r.running += 1;
                    (r.id, r.sub)
                })
                .collect()
        };
        let range = MmuRange {
            start,
            end,
            event,
            owner,
            blockable,
        };
        let mut ok = true;
        for (id, sub) in targets {
            // SAFETY: `running` pins the registration: `remove` waits for it to drop to zero
            // before the subscriber may go away.
            ok &= unsafe { sub.0.as_ref() }.invalidate(&range, cur);
            if let Some(r) = lock(&reg.regs).iter_mut().find(|r| r.id == id) {
                r.running -= 1;
            }
        }
        Invalidating { registry: reg, ok }
    }

    /// A whole invalidation with no page-table change in between.
    pub fn invalidate(&self, start: u64, end: u64, event: MmuEvent, owner: Option<Owner>) {
        drop(self.invalidate_start(start, end, event, owner, true));
    }
}

/// The interval-notifier storage the core embeds in its notifiers.
pub struct SimNotifier {
    seq: AtomicU64,
    reg: Mutex<Option<(Weak<ProcMm>, u64)>>,
}

// SAFETY: Implements the kernel protocol described in the module docs: registration sets an odd
// sequence below the mm's counter, `set_seq` stores the odd counter of the running
// invalidation, `read_begin` waits while that invalidation runs, and `remove` waits for running
// callbacks after unregistering.
unsafe impl IntervalNotifier for SimNotifier {
    type Mm = SimMm;

    fn new() -> Self {
        SimNotifier {
            seq: AtomicU64::new(1),
            reg: Mutex::new(None),
        }
    }

    unsafe fn insert(
        &self,
        mm: &SimMm,
        start: u64,
        len: u64,
        subscriber: NonNull<dyn Subscriber>,
    ) -> Result {
        sched::yield_now();
        mm.0.shared.inject.check(Site::NotifierInsert)?;
        let reg = &mm.0.notifiers;
        let id = reg.next_id.fetch_add(1, Ordering::SeqCst);
        {
            let inv = lock(&reg.inv);
            let seq = if inv.active > 0 { inv.seq } else { inv.seq - 1 };
            self.seq.store(seq, Ordering::SeqCst);
            lock(&reg.regs).push(Reg {
                id,
                start,
                end: start.saturating_add(len),
                sub: SubPtr(subscriber),
                running: 0,
            });
        }
        *lock(&self.reg) = Some((Arc::downgrade(&mm.0), id));
        Ok(())
    }

    unsafe fn remove(&self) {
        let Some((mm, id)) = lock(&self.reg).take() else {
            return;
        };
        let Some(mm) = mm.upgrade() else {
            return;
        };
        let reg = &mm.notifiers;
        let running = |regs: &Vec<Reg>| regs.iter().find(|r| r.id == id).map_or(0, |r| r.running);
        // Unregister first so no new callback starts, then wait for the running ones.
        let pending = {
            let mut regs = lock(&reg.regs);
            let n = running(&regs);
            if n == 0 {
                regs.retain(|r| r.id != id);
            }
            n
        };
        if pending > 0 {
            sched::wait_until(|| running(&lock(&reg.regs)) == 0);
            lock(&reg.regs).retain(|r| r.id != id);
        }
    }

    fn read_begin(&self) -> u64 {
        let seq = self.seq.load(Ordering::SeqCst);
        let mm = lock(&self.reg).as_ref().and_then(|(m, _)| m.upgrade());
        if let Some(mm) = mm {
            if mm.notifiers.seq() == seq {
                sched::wait_until(|| mm.notifiers.seq() != seq);
            }
        }
        seq
    }

    fn read_retry(&self, seq: u64) -> bool {
        self.seq.load(Ordering::SeqCst) != seq
    }

    fn set_seq(&self, cur_seq: u64) {
        self.seq.store(cur_seq, Ordering::SeqCst);
    }
}
