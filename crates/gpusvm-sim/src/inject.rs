//! The virtual clock and fault injection.
//!
//! **Clock.** Simulated time is a counter of milliseconds that only moves when the simulation
//! says so: every `hmm_range_fault` call costs a tick, a CPU that re-faults on a device page
//! inside its timeslice advances it, workloads advance it between steps. Retry budgets (1000 ms)
//! and timeslices (5 ms) therefore expire deterministically and nothing can spin forever.
//!
//! **Injection.** Every fallible backend call passes through [`Injector::check`] with the
//! [`Site`] it represents. The injector counts calls and can fail the N-th one (the sweep test
//! fails each N in turn) or fail calls with a seeded probability. The error is the one the real
//! service would return at that site (`ENOMEM` for allocations, `EBUSY` for an HMM collision,
//! `EIO` for a copy).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gpusvm_core::{code, Clock, Error};

/// Virtual milliseconds, shared by everything in one simulation.
#[derive(Clone, Debug, Default)]
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    /// Advances the clock.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A backend service that can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// The core's allocator.
    Alloc,
    /// Registering an interval notifier.
    NotifierInsert,
    /// `hmm_range_fault` (fails as a collision).
    Hmm,
    /// DMA-mapping a page.
    DmaMap,
    /// Mapping a device page for a GPU (`device_map`).
    DeviceMap,
    /// `migrate_vma_setup` / `migrate_device_pfns`.
    MigrateSetup,
    /// Allocating a system page for a migration.
    AllocPage,
    /// Allocating device memory.
    VramAlloc,
    /// `populate_devmem_pfn`.
    Populate,
    /// A copy-engine call.
    Copy,
}

impl Site {
    /// The error the service returns.
    pub fn error(self) -> Error {
        match self {
            Site::Hmm => code::EBUSY,
            Site::Copy => Error::from_errno(5), // EIO
            _ => code::ENOMEM,
        }
    }

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Site::Alloc => "alloc",
            Site::NotifierInsert => "notifier_insert",
            Site::Hmm => "hmm_range_fault",
            Site::DmaMap => "dma_map",
            Site::DeviceMap => "device_map",
            Site::MigrateSetup => "migrate_setup",
            Site::AllocPage => "alloc_page",
            Site::VramAlloc => "vram_alloc",
            Site::Populate => "populate_pfns",
            Site::Copy => "copy",
        }
    }
}

#[derive(Default)]
struct InjectState {
    /// Fail the call with this 1-based number (0: none).
    fail_at: u64,
    /// Fail each call with this probability (0.0: never), drawing from `rng`.
    probability: f64,
    rng: u64,
    /// Calls that were failed: (number, site).
    injected: Vec<(u64, Site)>,
}

/// Counts fallible backend calls and fails the chosen ones.
#[derive(Default)]
pub struct Injector {
    calls: AtomicU64,
    state: Mutex<InjectState>,
}

impl Injector {
    fn state(&self) -> std::sync::MutexGuard<'_, InjectState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the `n`-th call from the start of the simulation (1-based; 0 disables).
    pub fn fail_nth(&self, n: u64) {
        self.state().fail_at = n;
    }

    /// Fails each call with `probability`, reproducibly from `seed`.
    pub fn fail_randomly(&self, probability: f64, seed: u64) {
        let mut s = self.state();
        s.probability = probability;
        s.rng = seed ^ 0x5851_f42d_4c95_7f2d;
    }

    /// Fallible calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The calls that were made to fail.
    pub fn injected(&self) -> Vec<(u64, Site)> {
        self.state().injected.clone()
    }

    /// Accounts one call at `site`; returns the site's error if this call is chosen to fail.
    ///
    /// # Errors
    ///
    /// [`Site::error`] when injected.
    pub fn check(&self, site: Site) -> Result<(), Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = self.state();
        let mut fail = s.fail_at == n;
        if !fail && s.probability > 0.0 {
            s.rng = s
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let draw = (s.rng >> 11) as f64 / (1u64 << 53) as f64;
            fail = draw < s.probability;
        }
        if fail {
            s.injected.push((n, site));
            return Err(site.error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_call_fails_once_with_the_site_error() {
        let i = Injector::default();
        i.fail_nth(3);
        assert!(i.check(Site::Alloc).is_ok());
        assert!(i.check(Site::Alloc).is_ok());
        assert_eq!(i.check(Site::Hmm), Err(code::EBUSY));
        assert!(i.check(Site::Hmm).is_ok());
        assert_eq!(i.injected(), vec![(3, Site::Hmm)]);
        assert_eq!(i.calls(), 4);
    }

    #[test]
    fn random_failures_are_reproducible() {
        let run = |seed| {
            let i = Injector::default();
            i.fail_randomly(0.25, seed);
            (0..200)
                .map(|_| i.check(Site::DmaMap).is_err())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let n = a.iter().filter(|x| **x).count();
        assert!((20..80).contains(&n), "{n} failures of 200 at p=0.25");
    }

    #[test]
    fn clock_only_moves_when_told() {
        let c = SimClock::default();
        assert_eq!(c.now_ms(), 0);
        c.advance(5);
        assert_eq!(c.clone().now_ms(), 5);
    }
}
