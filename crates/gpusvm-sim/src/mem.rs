//! Physical memory: system and device page frames with real bytes, reference counts and reverse
//! maps.
//!
//! Every page the simulation touches is a [`Frame`] holding 4 KiB of real data. System frames
//! are created on CPU faults, by migration to RAM, or for huge pages (512 contiguous, aligned
//! frames). Device frames live at `device_pfn_base(dev) + i` and exist while they are device
//! pages (created by the core through `device_page_init`, freed when their last reference goes).
//!
//! A frame's reference count is its number of mappings plus pins (a page collected for
//! migration, a page held by a CPU fault). The reverse map lists the `(process, virtual page)`
//! pairs mapping it, which migration and eviction need to find and rewrite every mapping of a
//! page (the kernel's rmap walk). When a device frame's count reaches zero, its zone-device data
//! is handed to the core's page-free entry (`folio_free`), outside the frame table's lock.

use std::collections::BTreeMap;
use std::sync::Mutex;

use gpusvm_core::PgmapId;

/// A page frame number.
pub type Pfn = u64;
/// A process id.
pub type Pid = u32;
/// A virtual page number.
pub type Vpn = u64;

/// The base page size of the simulation.
pub const PAGE: u64 = 4096;
/// Pages in a 2 MiB huge page.
pub const HUGE_PAGES: u64 = 512;
/// First system page frame (frame 0 is never used, as on real machines).
pub const SYSTEM_PFN_BASE: Pfn = 0x100;
/// Device `d`'s frames start at `DEVICE_PFN_STRIDE * (d + 1)`.
pub const DEVICE_PFN_STRIDE: Pfn = 1 << 36;

/// First frame of device `dev`.
pub fn device_pfn_base(dev: u32) -> Pfn {
    DEVICE_PFN_STRIDE * (u64::from(dev) + 1)
}

/// The device owning frame `pfn`, if it is a device frame.
pub fn device_of_pfn(pfn: Pfn) -> Option<u32> {
    let d = pfn / DEVICE_PFN_STRIDE;
    (d >= 1).then(|| u32::try_from(d - 1).ok()).flatten()
}

/// The pagemap id of device `dev`.
pub fn pgmap_of(dev: u32) -> PgmapId {
    PgmapId(dev as usize + 1)
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// System RAM.
    System,
    /// A device-private page of `dev`, with the core's zone-device data.
    Device {
        /// The device.
        dev: u32,
        /// The core's allocation tracker.
        zone_data: usize,
    },
}

/// One page of memory.
pub struct Frame {
    /// What it is.
    pub kind: FrameKind,
    /// Mappings plus pins.
    pub refs: u32,
    /// The mappings, for rmap walks.
    pub rmap: Vec<(Pid, Vpn)>,
    /// The bytes.
    pub data: Box<[u8]>,
}

/// The frame table.
#[derive(Default)]
pub struct Frames {
    inner: Mutex<FramesInner>,
}

#[derive(Default)]
struct FramesInner {
    frames: BTreeMap<Pfn, Frame>,
    next_system: Pfn,
    free_system: Vec<Pfn>,
}

fn zeroed() -> Box<[u8]> {
    vec![0u8; PAGE as usize].into_boxed_slice()
}

impl Frames {
    fn lock(&self) -> std::sync::MutexGuard<'_, FramesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new zeroed system frame with one reference.
    pub fn alloc_system(&self) -> Pfn {
        let mut f = self.lock();
        let pfn = match f.free_system.pop() {
            Some(p) => p,
            None => {
                let p = SYSTEM_PFN_BASE + f.next_system;
                f.next_system += 1;
                p
            }
        };
        f.frames.insert(
            pfn,
            Frame {
                kind: FrameKind::System,
                refs: 1,
                rmap: Vec::new(),
                data: zeroed(),
            },
        );
        pfn
    }

    /// `n` (a power of two) new contiguous, `n`-aligned zeroed system frames, one reference each.
    pub fn alloc_system_run(&self, n: u64) -> Pfn {
        let mut f = self.lock();
        let start = (SYSTEM_PFN_BASE + f.next_system).next_multiple_of(n);
        f.next_system = start + n - SYSTEM_PFN_BASE;
        for pfn in start..start + n {
            f.frames.insert(
                pfn,
                Frame {
                    kind: FrameKind::System,
                    refs: 1,
                    rmap: Vec::new(),
                    data: zeroed(),
                },
            );
        }
        start
    }

    /// Makes `pfn` a device page of `dev` with one reference (`zone_device_page_init`).
    pub fn init_device(&self, pfn: Pfn, dev: u32, zone_data: usize) {
        self.lock().frames.insert(
            pfn,
            Frame {
                kind: FrameKind::Device { dev, zone_data },
                refs: 1,
                rmap: Vec::new(),
                data: zeroed(),
            },
        );
    }

    /// What `pfn` is, if it exists.
    pub fn kind(&self, pfn: Pfn) -> Option<FrameKind> {
        self.lock().frames.get(&pfn).map(|f| f.kind)
    }

    /// Whether `pfn` exists.
    pub fn exists(&self, pfn: Pfn) -> bool {
        self.lock().frames.contains_key(&pfn)
    }

    /// Reference count of `pfn` (0 if it does not exist).
    pub fn refs(&self, pfn: Pfn) -> u32 {
        self.lock().frames.get(&pfn).map_or(0, |f| f.refs)
    }

    /// The mappings of `pfn`.
    pub fn rmap(&self, pfn: Pfn) -> Vec<(Pid, Vpn)> {
        self.lock()
            .frames
            .get(&pfn)
            .map(|f| f.rmap.clone())
            .unwrap_or_default()
    }

    /// Takes a reference.
    pub fn get(&self, pfn: Pfn) {
        if let Some(f) = self.lock().frames.get_mut(&pfn) {
            f.refs += 1;
        }
    }

    /// Records a mapping and takes its reference.
    pub fn map(&self, pfn: Pfn, pid: Pid, vpn: Vpn) {
        if let Some(f) = self.lock().frames.get_mut(&pfn) {
            f.refs += 1;
            f.rmap.push((pid, vpn));
        }
    }

    /// Removes a mapping and drops its reference. Returns a freed device frame's zone data,
    /// which the caller must pass to the core once no lock is held.
    #[must_use = "a freed device page must be reported to the core"]
    pub fn unmap(&self, pfn: Pfn, pid: Pid, vpn: Vpn) -> Option<Freed> {
        let mut f = self.lock();
        if let Some(fr) = f.frames.get_mut(&pfn) {
            if let Some(i) = fr.rmap.iter().position(|m| *m == (pid, vpn)) {
                fr.rmap.swap_remove(i);
            }
        }
        Self::put_locked(&mut f, pfn)
    }

    /// Moves an rmap entry from one virtual page to another (mremap).
    pub fn remap(&self, pfn: Pfn, pid: Pid, from: Vpn, to: Vpn) {
        if let Some(fr) = self.lock().frames.get_mut(&pfn) {
            for m in fr.rmap.iter_mut() {
                if *m == (pid, from) {
                    *m = (pid, to);
                }
            }
        }
    }

    /// Drops a reference (see [`Frames::unmap`] for the result).
    #[must_use = "a freed device page must be reported to the core"]
    pub fn put(&self, pfn: Pfn) -> Option<Freed> {
        let mut f = self.lock();
        Self::put_locked(&mut f, pfn)
    }

    fn put_locked(f: &mut FramesInner, pfn: Pfn) -> Option<Freed> {
        let fr = f.frames.get_mut(&pfn)?;
        fr.refs = fr.refs.saturating_sub(1);
        if fr.refs > 0 {
            return None;
        }
        let fr = f.frames.remove(&pfn)?;
        match fr.kind {
            FrameKind::System => {
                f.free_system.push(pfn);
                None
            }
            FrameKind::Device { dev, zone_data } => Some(Freed {
                pfn,
                dev,
                zone_data,
            }),
        }
    }

    /// Reads `out.len()` bytes at `offset` of `pfn`. Returns false if the frame does not exist.
    pub fn read(&self, pfn: Pfn, offset: usize, out: &mut [u8]) -> bool {
        let f = self.lock();
        let Some(fr) = f.frames.get(&pfn) else {
            return false;
        };
        match fr.data.get(offset..offset + out.len()) {
            Some(src) => {
                out.copy_from_slice(src);
                true
            }
            None => false,
        }
    }

    /// Writes `data` at `offset` of `pfn`. Returns false if the frame does not exist.
    pub fn write(&self, pfn: Pfn, offset: usize, data: &[u8]) -> bool {
        let mut f = self.lock();
        let Some(fr) = f.frames.get_mut(&pfn) else {
            return false;
        };
        match fr.data.get_mut(offset..offset + data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Copies a whole page from `src` to `dst`. Returns false if either does not exist.
    pub fn copy_page(&self, src: Pfn, dst: Pfn) -> bool {
        let mut f = self.lock();
        let Some(data) = f.frames.get(&src).map(|s| s.data.clone()) else {
            return false;
        };
        match f.frames.get_mut(&dst) {
            Some(d) => {
                d.data = data;
                true
            }
            None => false,
        }
    }

    /// Number of live frames of each kind: (system, device).
    pub fn counts(&self) -> (usize, usize) {
        let f = self.lock();
        let dev = f
            .frames
            .values()
            .filter(|fr| matches!(fr.kind, FrameKind::Device { .. }))
            .count();
        (f.frames.len() - dev, dev)
    }

    /// Live device frames of `dev`.
    pub fn device_frames(&self, dev: u32) -> usize {
        let f = self.lock();
        let base = device_pfn_base(dev);
        f.frames.range(base..base + DEVICE_PFN_STRIDE).count()
    }

    /// Frames that are pinned or mapped but whose rmap does not account for their references
    /// beyond `slack`: used by the leak checker at teardown (every frame should be gone).
    pub fn live_frames(&self) -> Vec<(Pfn, FrameKind, u32, usize)> {
        self.lock()
            .frames
            .iter()
            .map(|(p, f)| (*p, f.kind, f.refs, f.rmap.len()))
            .collect()
    }
}

/// A device page whose last reference was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a freed device page must be reported to the core"]
pub struct Freed {
    /// The frame.
    pub pfn: Pfn,
    /// Its device.
    pub dev: u32,
    /// Its zone-device data.
    pub zone_data: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_count_references_and_report_device_frees() {
        let f = Frames::default();
        let a = f.alloc_system();
        f.map(a, 1, 10);
        assert_eq!(f.refs(a), 2);
        assert!(f.put(a).is_none());
        assert!(f.unmap(a, 1, 10).is_none());
        assert!(!f.exists(a));
        // Freed system frames are reused.
        assert_eq!(f.alloc_system(), a);

        let d = device_pfn_base(1) + 5;
        assert_eq!(device_of_pfn(d), Some(1));
        assert_eq!(device_of_pfn(a), None);
        f.init_device(d, 1, 0xabc);
        f.map(d, 2, 20);
        assert!(f.put(d).is_none());
        assert_eq!(
            f.unmap(d, 2, 20),
            Some(Freed {
                pfn: d,
                dev: 1,
                zone_data: 0xabc
            })
        );
    }

    #[test]
    fn huge_runs_are_aligned_and_data_is_real() {
        let f = Frames::default();
        let _ = f.alloc_system();
        let run = f.alloc_system_run(HUGE_PAGES);
        assert_eq!(run % HUGE_PAGES, 0);
        assert!(f.write(run + 3, 100, &[1, 2, 3]));
        let mut out = [0u8; 3];
        assert!(f.read(run + 3, 100, &mut out));
        assert_eq!(out, [1, 2, 3]);
        assert!(f.copy_page(run + 3, run + 4));
        assert!(f.read(run + 4, 100, &mut out));
        assert_eq!(out, [1, 2, 3]);
        assert!(!f.read(run + 3, 4095, &mut out));
    }
}
