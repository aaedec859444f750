//! The integrity oracle: a shadow copy of every process's memory.
//!
//! Contents are tracked per memory object page (`(object, page index)`), the way the kernel
//! tracks pages: a private VMA has its own object (fork gives the child a copy), a shared mapping
//! shares its object, and `mremap` moves a VMA without changing what it maps. A page with no
//! shadow entry holds zeros. Every successful CPU or GPU write updates the shadow; every read is
//! compared with it, and any difference is data corruption.

use std::collections::BTreeMap;

use crate::mem::PAGE;

/// Shadow page contents by `(object, page index)`.
#[derive(Default)]
pub struct Shadow {
    pages: BTreeMap<(u64, u64), Box<[u8]>>,
}

impl Shadow {
    /// Writes `data` at `offset` of the page.
    pub fn write(&mut self, obj: u64, idx: u64, offset: usize, data: &[u8]) {
        let page = self
            .pages
            .entry((obj, idx))
            .or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
        if let Some(dst) = page.get_mut(offset..offset + data.len()) {
            dst.copy_from_slice(data);
        }
    }

    /// Reads `out.len()` bytes at `offset` of the page.
    pub fn read(&self, obj: u64, idx: u64, offset: usize, out: &mut [u8]) {
        match self
            .pages
            .get(&(obj, idx))
            .and_then(|p| p.get(offset..offset + out.len()))
        {
            Some(src) => out.copy_from_slice(src),
            None => out.fill(0),
        }
    }

    /// Forgets pages `[first, first + n)` of `obj` (they read as zeros again).
    pub fn drop_pages(&mut self, obj: u64, first: u64, n: u64) {
        let keys: Vec<(u64, u64)> = self
            .pages
            .range((obj, first)..(obj, first.saturating_add(n)))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.pages.remove(&k);
        }
    }

    /// Copies every page of `from` to `to` (fork of a private mapping).
    pub fn copy_object(&mut self, from: u64, to: u64) {
        let pages: Vec<(u64, Box<[u8]>)> = self
            .pages
            .range((from, 0)..=(from, u64::MAX))
            .map(|((_, i), p)| (*i, p.clone()))
            .collect();
        for (i, p) in pages {
            self.pages.insert((to, i), p);
        }
    }

    /// Number of shadow pages (for reports).
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether the shadow is empty.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

/// Where the first difference between memory and shadow is.
pub fn first_difference(found: &[u8], expected: &[u8]) -> Option<(usize, u8, u8)> {
    found
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .map(|i| (i, expected[i], found[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_pages_default_to_zero_and_copy_per_object() {
        let mut s = Shadow::default();
        let mut out = [9u8; 4];
        s.read(1, 0, 10, &mut out);
        assert_eq!(out, [0; 4]);
        s.write(1, 0, 10, &[1, 2, 3, 4]);
        s.write(1, 5, 0, &[7]);
        s.copy_object(1, 2);
        s.write(1, 0, 10, &[5]);
        s.read(2, 0, 10, &mut out);
        assert_eq!(out, [1, 2, 3, 4]);
        s.read(1, 0, 10, &mut out);
        assert_eq!(out, [5, 2, 3, 4]);
        s.drop_pages(1, 0, 1);
        s.read(1, 0, 10, &mut out);
        assert_eq!(out, [0; 4]);
        assert_eq!(s.len(), 3);
        assert_eq!(first_difference(&[1, 2, 3], &[1, 9, 3]), Some((1, 9, 2)));
    }
}
