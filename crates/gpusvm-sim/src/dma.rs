//! The DMA mapper of one device: an IOVA space with per-mapping tracking.
//!
//! Every `map_page` gets a fresh IOVA range (IOVAs are never reused, so a stale GPU PTE can
//! never silently reach a newer mapping: a lookup of an unmapped IOVA fails and the simulator
//! reports it as an IOMMU fault). Mappings are tracked until unmapped, so a leak shows up at
//! teardown, and an unmap that does not match a mapping (wrong size or direction, double unmap)
//! is recorded as an error. Calls pass through the fault injector.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use gpusvm_core::{DmaDevice, DmaDirection, Result};

use crate::inject::{Injector, Site};
use crate::mem::{Pfn, PAGE};
use crate::sched;
use crate::shared::lock;

/// One live mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaMapping {
    /// First frame.
    pub pfn: Pfn,
    /// Number of pages.
    pub pages: u64,
    /// Direction.
    pub dir: DmaDirection,
}

/// State of one device's mapper.
pub struct DmaSpace {
    /// The device.
    pub dev: u32,
    next: AtomicU64,
    maps: Mutex<BTreeMap<u64, DmaMapping>>,
    errors: Mutex<Vec<String>>,
    total: AtomicU64,
    injector: Weak<Injector>,
}

/// A handle to a device's DMA mapper (the core's `DmaDevice`).
#[derive(Clone)]
pub struct SimDma(pub Arc<DmaSpace>);

impl std::fmt::Debug for SimDma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimDma(dev {})", self.0.dev)
    }
}

impl SimDma {
    /// A mapper for device `dev`.
    pub fn new(dev: u32, injector: &Arc<Injector>) -> Self {
        SimDma(Arc::new(DmaSpace {
            dev,
            next: AtomicU64::new(0x1_0000_0000),
            maps: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(Vec::new()),
            total: AtomicU64::new(0),
            injector: Arc::downgrade(injector),
        }))
    }

    /// Live mappings.
    pub fn live(&self) -> usize {
        lock(&self.0.maps).len()
    }

    /// Mappings made so far.
    pub fn total(&self) -> u64 {
        self.0.total.load(Ordering::SeqCst)
    }

    /// Misuses recorded (bad unmaps).
    pub fn errors(&self) -> Vec<String> {
        lock(&self.0.errors).clone()
    }

    /// Records a misuse found by the device (e.g. an access through an unmapped IOVA).
    pub fn record_error(&self, msg: String) {
        lock(&self.0.errors).push(msg);
    }

    /// The frame and direction behind `iova`, if it is mapped.
    pub fn translate(&self, iova: u64) -> Option<(Pfn, DmaDirection)> {
        let maps = lock(&self.0.maps);
        let (base, m) = maps.range(..=iova).next_back()?;
        let page = (iova - base) / PAGE;
        (page < m.pages).then_some((m.pfn + page, m.dir))
    }
}

impl DmaDevice for SimDma {
    fn map_page(&self, pfn: u64, order: u32, dir: DmaDirection) -> Result<u64> {
        sched::yield_now();
        if let Some(inj) = self.0.injector.upgrade() {
            inj.check(Site::DmaMap)?;
        }
        let pages = 1u64 << order;
        let size = pages * PAGE;
        let iova = self.0.next.fetch_add(size, Ordering::SeqCst);
        self.0.total.fetch_add(1, Ordering::SeqCst);
        lock(&self.0.maps).insert(iova, DmaMapping { pfn, pages, dir });
        Ok(iova)
    }

    fn unmap_page(&self, addr: u64, order: u32, dir: DmaDirection) {
        let removed = lock(&self.0.maps).remove(&addr);
        match removed {
            Some(m) if m.pages == 1 << order && m.dir == dir => {}
            other => self.record_error(format!(
                "dev {}: unmap of {addr:#x} (order {order}, {dir:?}) does not match {other:?}",
                self.0.dev
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_tracked_and_never_reused() {
        let inj = Arc::new(Injector::default());
        let d = SimDma::new(0, &inj);
        let a = d.map_page(0x500, 9, DmaDirection::Bidirectional).unwrap();
        assert_eq!(
            d.translate(a + 3 * PAGE),
            Some((0x503, DmaDirection::Bidirectional))
        );
        assert_eq!(d.translate(a + 512 * PAGE), None);
        d.unmap_page(a, 9, DmaDirection::Bidirectional);
        assert_eq!(d.live(), 0);
        assert_eq!(d.translate(a), None);
        let b = d.map_page(0x500, 0, DmaDirection::ToDevice).unwrap();
        assert_ne!(a, b);
        d.unmap_page(b, 0, DmaDirection::Bidirectional);
        d.unmap_page(b, 0, DmaDirection::ToDevice);
        assert_eq!(d.errors().len(), 2);
        inj.fail_nth(inj.calls() + 1);
        assert!(d.map_page(1, 0, DmaDirection::ToDevice).is_err());
    }
}
