//! Per-span memory attributes (Xe's madvise: preferred location, atomic access mode).
//!
//! An interval map from address spans to [`Attrs`]: setting attributes on a span splits the
//! entries it cuts, so every address has exactly one set of attributes. Lookups are a floor
//! search. Unset addresses have the defaults (device memory preferred, device atomics).

use std::collections::BTreeMap;

/// Where memory should live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Preferred {
    /// The faulting device's VRAM (Xe's default for devmem-capable VMs).
    #[default]
    Default,
    /// VRAM of the faulting device.
    Vram,
    /// System memory: never migrate on fault (atomics still need device memory).
    Ram,
    /// VRAM of a given device.
    Dev(u32),
}

/// Who may perform atomics (`DRM_XE_ATOMIC_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AtomicMode {
    /// Platform default: GPU atomics need device memory.
    #[default]
    Default,
    /// GPU atomics on device memory.
    Device,
    /// Atomics coherent between CPU and GPU (device memory on this platform).
    Global,
    /// Only the CPU does atomics: GPU atomics fail with `EACCES`.
    Cpu,
}

/// Attributes of an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Preferred location.
    pub preferred: Preferred,
    /// Atomic mode.
    pub atomic: AtomicMode,
}

/// The attribute map of one GPU VM.
#[derive(Default, Debug)]
pub struct AttrMap {
    /// start → (end, attributes); entries never overlap.
    map: BTreeMap<u64, (u64, Attrs)>,
}

impl AttrMap {
    /// Attributes at `addr`.
    pub fn at(&self, addr: u64) -> Attrs {
        self.map
            .range(..=addr)
            .next_back()
            .filter(|(_, (end, _))| addr < *end)
            .map(|(_, (_, a))| *a)
            .unwrap_or_default()
    }

    /// Applies `f` to the attributes of every address in `[start, end)`.
    pub fn update(&mut self, start: u64, end: u64, f: impl Fn(&mut Attrs)) {
        if start >= end {
            return;
        }
        self.split(start);
        self.split(end);
        // Fill holes with defaults so `f` applies everywhere in the span.
        let mut cursor = start;
        let existing: Vec<(u64, u64)> = self
            .map
            .range(start..end)
            .map(|(s, (e, _))| (*s, *e))
            .collect();
        for (s, e) in existing {
            if cursor < s {
                self.map.insert(cursor, (s, Attrs::default()));
            }
            cursor = e;
        }
        if cursor < end {
            self.map.insert(cursor, (end, Attrs::default()));
        }
        for (_, (_, a)) in self.map.range_mut(start..end) {
            f(a);
        }
    }

    /// Splits the entry containing `at` so that an entry starts there.
    fn split(&mut self, at: u64) {
        let hit = self
            .map
            .range(..at)
            .next_back()
            .filter(|(_, (end, _))| at < *end)
            .map(|(s, (e, a))| (*s, *e, *a));
        if let Some((s, e, a)) = hit {
            self.map.insert(s, (at, a));
            self.map.insert(at, (e, a));
        }
    }

    /// Forgets attributes of `[start, end)` (munmap resets them).
    pub fn clear(&mut self, start: u64, end: u64) {
        self.split(start);
        self.split(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(s, _)| *s).collect();
        for k in keys {
            self.map.remove(&k);
        }
    }

    /// Number of entries (for tests).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_split_and_lookups_find() {
        let mut m = AttrMap::default();
        m.update(0x1000, 0x5000, |a| a.preferred = Preferred::Ram);
        m.update(0x3000, 0x8000, |a| a.atomic = AtomicMode::Cpu);
        assert_eq!(m.at(0x0fff), Attrs::default());
        assert_eq!(m.at(0x1000).preferred, Preferred::Ram);
        assert_eq!(m.at(0x2fff).atomic, AtomicMode::Default);
        let both = m.at(0x3000);
        assert_eq!(
            (both.preferred, both.atomic),
            (Preferred::Ram, AtomicMode::Cpu)
        );
        let tail = m.at(0x7fff);
        assert_eq!(
            (tail.preferred, tail.atomic),
            (Preferred::Default, AtomicMode::Cpu)
        );
        assert_eq!(m.at(0x8000), Attrs::default());
        m.clear(0x2000, 0x7000);
        assert_eq!(m.at(0x4000), Attrs::default());
        assert_eq!(m.at(0x1800).preferred, Preferred::Ram);
        assert_eq!(m.at(0x7800).atomic, AtomicMode::Cpu);
    }
}
