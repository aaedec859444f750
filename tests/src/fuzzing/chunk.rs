//! Fuzz target `chunk_select`: [`gpusvm_core::chunk::select_chunk`] and
//! [`gpusvm_core::chunk::ChunkSizes::new`] over arbitrary geometry.
//!
//! # Input layout
//!
//! A [`Geometry`]: page shift, fault address, the VMA, notifier and GPU VA windows (each given
//! by its distance below and above the fault, so mutations keep it near the fault; or, for the
//! notifier, the aligned window of `notifier_size` as the core computes it), the candidate
//! sizes, `notifier_size`, `check_pages_threshold`, up to four existing ranges (page offset from
//! the fault and length) and a bitmap of present pages around the fault. Numbers use a compact
//! [value encoding](Geometry) that makes powers of two, page multiples and addresses near
//! `u64::MAX` likely.
//!
//! # Checks
//!
//! - Nothing panics, whatever the numbers (including spans that end at `u64::MAX`, zero or
//!   non-power-of-two sizes, windows that do not contain the fault).
//! - `PageShift::new` and `ChunkSizes::new` accept exactly the documented values, and a valid
//!   list comes back unchanged.
//! - The callbacks are asked as documented: `pages_present` only for candidates within the
//!   threshold, neither for the single-page size.
//! - The result is the one of a reference model of the module docs' rules (the first candidate,
//!   in list order, that fits), computed in 128-bit arithmetic.
//! - For a valid list, a chosen span contains the fault, is aligned to its size, is one of the
//!   sizes, lies inside VMA ∩ notifier ∩ GPU window, overlaps no existing range and has every
//!   page present if within the threshold — both unless it is the single page.

use gpusvm_core::addr::{align_down, PageShift, Span};
use gpusvm_core::chunk::{candidate, select_chunk, ChunkRequest, ChunkSizes};
use gpusvm_core::code;

use super::{Reader, Writer};

/// At most this many candidate sizes are decoded (more than `ChunkSizes::MAX`, to test the
/// limit).
pub const MAX_SIZES: usize = 10;
/// At most this many existing ranges.
pub const MAX_EXISTING: usize = 4;

/// A window around the fault: `[fault - below, fault + above)`, saturating, made non-empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Bytes below the fault.
    pub below: u64,
    /// Bytes from the fault to the end.
    pub above: u64,
}

impl Window {
    fn span(&self, fault: u64) -> Span {
        let start = fault.saturating_sub(self.below).min(u64::MAX - 1);
        let end = fault.saturating_add(self.above).max(start + 1);
        Span::new(start, end).unwrap_or_else(|e| panic!("window {start:#x}..{end:#x}: {e:?}"))
    }
}

/// A decoded `chunk_select` input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Geometry {
    /// The page shift given to `PageShift::new` (0..=31; the checks use 4K if it is invalid).
    pub page_shift: u8,
    /// The faulting address.
    pub fault: u64,
    /// The VMA.
    pub vma: Window,
    /// The notifier window (ignored when `notifier_aligned`).
    pub notifier: Window,
    /// Use the `notifier_size`-aligned window containing the fault, as the core does.
    pub notifier_aligned: bool,
    /// The GPU VA window.
    pub gpuva: Window,
    /// The candidate sizes, in the order given.
    pub sizes: Vec<u64>,
    /// `notifier_size` for `ChunkSizes::new`.
    pub notifier_size: u64,
    /// `check_pages_threshold`.
    pub threshold: u64,
    /// Existing ranges: (offset in pages from the fault's page, pages).
    pub existing: Vec<(i32, u16)>,
    /// Present pages: bit `i` is page `i - 32` relative to the fault's page.
    pub present: u64,
    /// Whether pages outside the 64-page bitmap are present.
    pub present_outside: bool,
}

/// A number: a mode byte, then a payload depending on the mode.
fn value(r: &mut Reader<'_>) -> u64 {
    match r.u8() % 8 {
        0 => r.u64(),
        1 => 1u64 << (r.u8() % 64),
        2 => u64::from(r.u16()) << 12,
        3 => u64::MAX - u64::from(r.u16()),
        4 => (1u64 << (r.u8() % 64)).wrapping_sub(1),
        5 => u64::from(r.u32()),
        6 => 0,
        _ => u64::MAX,
    }
}

fn put_value(w: &mut Writer, v: u64) {
    w.u8(0);
    w.u64(v);
}

impl Geometry {
    /// Decodes any bytes (total).
    pub fn decode(data: &[u8]) -> Geometry {
        let mut r = Reader::new(data);
        let r = &mut r;
        let shift = r.u8();
        let page_shift = if shift < 0xe0 {
            12 + shift % 10
        } else {
            shift - 0xe0
        };
        let fault = value(r);
        let window = |r: &mut Reader<'_>| Window {
            below: value(r),
            above: value(r),
        };
        let vma = window(r);
        let notifier = window(r);
        let gpuva = window(r);
        let flags = r.u8();
        let n = usize::from(r.u8()) % (MAX_SIZES + 1);
        let mut sizes: Vec<u64> = (0..n).map(|_| value(r)).collect();
        if flags & 2 != 0 {
            sizes.sort_unstable_by(|a, b| b.cmp(a));
        }
        if flags & 4 != 0 {
            sizes.dedup();
        }
        let notifier_size = value(r);
        let threshold = value(r);
        let n = usize::from(r.u8()) % (MAX_EXISTING + 1);
        let existing = (0..n).map(|_| (r.u32() as i32, r.u16())).collect();
        let present = r.u64();
        Geometry {
            page_shift,
            fault,
            vma,
            notifier,
            notifier_aligned: flags & 1 != 0,
            gpuva,
            sizes,
            notifier_size,
            threshold,
            existing,
            present,
            present_outside: flags & 8 != 0,
        }
    }

    /// Bytes that [`Geometry::decode`] turns back into this geometry (for a page shift of at
    /// most 31, at most [`MAX_SIZES`] sizes and [`MAX_EXISTING`] ranges).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(if (12..22).contains(&self.page_shift) {
            self.page_shift - 12
        } else {
            0xe0 + self.page_shift
        });
        put_value(&mut w, self.fault);
        for win in [self.vma, self.notifier, self.gpuva] {
            put_value(&mut w, win.below);
            put_value(&mut w, win.above);
        }
        w.u8(u8::from(self.notifier_aligned) | u8::from(self.present_outside) << 3);
        w.u8(self.sizes.len() as u8);
        for s in &self.sizes {
            put_value(&mut w, *s);
        }
        put_value(&mut w, self.notifier_size);
        put_value(&mut w, self.threshold);
        w.u8(self.existing.len() as u8);
        for (off, len) in &self.existing {
            w.u32(*off as u32);
            w.u16(*len);
        }
        w.u64(self.present);
        w.bytes
    }
}

/// The decoded world the callbacks and the checks see.
struct Model {
    page: u64,
    existing: Vec<Span>,
    /// First address of the bitmap (page-aligned).
    base: u64,
    present: u64,
    present_outside: bool,
}

impl Model {
    fn new(g: &Geometry, page: PageShift) -> Model {
        let pg = page.size();
        let fault_page = align_down(g.fault, pg);
        let existing = g
            .existing
            .iter()
            .filter_map(|&(off, len)| {
                let start =
                    fault_page.checked_add_signed(i64::from(off).checked_mul(pg as i64)?)?;
                Span::from_len(start, (u64::from(len) + 1) * pg).ok()
            })
            .collect();
        Model {
            page: pg,
            existing,
            base: fault_page.saturating_sub(32 * pg),
            present: g.present,
            present_outside: g.present_outside,
        }
    }

    fn overlaps(&self, span: Span) -> bool {
        self.existing.iter().any(|e| e.overlaps(&span))
    }

    fn pages_present(&self, span: Span) -> bool {
        let (s, e) = (u128::from(span.start()), u128::from(span.end()));
        let pg = u128::from(self.page);
        let base = u128::from(self.base);
        if (s < base || e > base + 64 * pg) && !self.present_outside {
            return false;
        }
        (0..64u32).all(|i| {
            let ps = base + u128::from(i) * pg;
            let overlaps = ps < e && s < ps + pg;
            !overlaps || self.present & (1 << i) != 0
        })
    }
}

/// The rules of the module docs of `gpusvm_core::chunk`, in 128-bit arithmetic.
fn reference(req: &ChunkRequest, sizes: &[u64], m: &Model) -> Option<(u64, u64)> {
    let inside = |w: Span, s: u128, e: u128| u128::from(w.start()) <= s && e <= u128::from(w.end());
    for &size in sizes {
        if size == 0 {
            continue;
        }
        let start = req.fault & !(size - 1);
        let end = u128::from(start) + u128::from(size);
        if end > u128::from(u64::MAX) {
            continue;
        }
        let s = u128::from(start);
        if !(inside(req.vma, s, end) && inside(req.notifier, s, end) && inside(req.gpuva, s, end)) {
            continue;
        }
        if size == req.page.size() {
            return Some((start, size));
        }
        let span = Span::from_len(start, size).ok()?;
        if m.overlaps(span) {
            continue;
        }
        if size <= req.check_pages_threshold && !m.pages_present(span) {
            continue;
        }
        return Some((start, size));
    }
    None
}

/// Runs one fuzz input.
///
/// # Panics
///
/// If the code under test panics or breaks one of the checks of the module docs.
pub fn run(data: &[u8]) {
    let g = Geometry::decode(data);
    if let Err(msg) = check(&g) {
        panic!("chunk_select: {msg}\n--- geometry ---\n{g:#x?}");
    }
}

/// Checks one geometry.
///
/// # Errors
///
/// A description of the check that fails.
pub fn check(g: &Geometry) -> Result<(), String> {
    let shift = u32::from(g.page_shift);
    let page = match PageShift::new(shift) {
        Ok(p) if (12..=21).contains(&shift) => p,
        Ok(_) => return Err(format!("PageShift::new({shift}) accepted")),
        Err(e) if (12..=21).contains(&shift) => {
            return Err(format!("PageShift::new({shift}) refused: {e:?}"))
        }
        Err(e) if e != code::EINVAL => return Err(format!("PageShift::new({shift}): {e:?}")),
        Err(_) => PageShift::SZ_4K,
    };
    let pg = page.size();

    // ChunkSizes::new accepts exactly the documented lists.
    let valid = !g.sizes.is_empty()
        && g.sizes.len() <= ChunkSizes::MAX
        && g.sizes.iter().enumerate().all(|(i, &s)| {
            s.is_power_of_two()
                && s >= pg
                && s <= g.notifier_size
                && (i == 0 || g.sizes.get(i - 1).is_some_and(|&p| s < p))
        });
    match (ChunkSizes::new(&g.sizes, page, g.notifier_size), valid) {
        (Ok(c), true) if c.as_slice() == g.sizes.as_slice() => {}
        (Ok(c), true) => return Err(format!("ChunkSizes::new changed the list to {c:?}")),
        (Ok(_), false) => return Err("ChunkSizes::new accepted an invalid list".into()),
        (Err(e), true) => return Err(format!("ChunkSizes::new refused a valid list: {e:?}")),
        (Err(e), false) if e != code::EINVAL => {
            return Err(format!("ChunkSizes::new: {e:?} instead of EINVAL"))
        }
        (Err(_), false) => {}
    }

    // `candidate` for powers of two: contains the fault and is aligned, or overflows.
    for &s in g.sizes.iter().filter(|s| s.is_power_of_two()) {
        let top = u128::from(align_down(g.fault, s)) + u128::from(s);
        match candidate(g.fault, s) {
            Some(c) if c.contains(g.fault) && c.start() % s == 0 && c.len() == s => {}
            None if top > u128::from(u64::MAX) => {}
            other => return Err(format!("candidate({:#x}, {s:#x}) = {other:?}", g.fault)),
        }
    }

    let notifier = if g.notifier_aligned && g.notifier_size.is_power_of_two() {
        let start = align_down(g.fault, g.notifier_size);
        match Span::from_len(start, g.notifier_size) {
            Ok(s) => s,
            Err(_) => g.notifier.span(g.fault),
        }
    } else {
        g.notifier.span(g.fault)
    };
    let req = ChunkRequest {
        fault: g.fault,
        vma: g.vma.span(g.fault),
        notifier,
        gpuva: g.gpuva.span(g.fault),
        page,
        check_pages_threshold: g.threshold,
    };
    let m = Model::new(g, page);
    let mut asked_overlap = Vec::new();
    let mut asked_present = Vec::new();
    let chosen = select_chunk(
        &req,
        &g.sizes,
        |s| {
            asked_overlap.push(s);
            m.overlaps(s)
        },
        |s| {
            asked_present.push(s);
            m.pages_present(s)
        },
    );

    if let Some(s) = asked_overlap.iter().find(|s| s.len() == pg) {
        return Err(format!("overlaps() asked for the single page {s:x?}"));
    }
    if let Some(s) = asked_present
        .iter()
        .find(|s| s.len() == pg || s.len() > g.threshold)
    {
        return Err(format!(
            "pages_present() asked for {s:x?} (page {pg:#x}, threshold {:#x})",
            g.threshold
        ));
    }

    let want = reference(&req, &g.sizes, &m);
    let got = chosen.map(|s| (s.start(), s.len()));
    if got != want {
        return Err(format!(
            "select_chunk chose {got:x?}, the rules give {want:x?} (request {req:#x?})"
        ));
    }

    let Some(span) = chosen else {
        return Ok(());
    };
    let windows = req.vma.covers(&span) && req.notifier.covers(&span) && req.gpuva.covers(&span);
    if !windows || !span.contains(g.fault) || !g.sizes.contains(&span.len()) {
        return Err(format!(
            "chose {span:x?}, which is not a candidate inside the windows (request {req:#x?})"
        ));
    }
    if valid {
        if span.start() % span.len() != 0 {
            return Err(format!("chose the misaligned {span:x?}"));
        }
        if span.len() != pg && m.overlaps(span) {
            return Err(format!("chose {span:x?}, which overlaps an existing range"));
        }
        if span.len() != pg && span.len() <= g.threshold && !m.pages_present(span) {
            return Err(format!(
                "chose {span:x?} within the threshold with pages missing"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_inverts_encode() {
        for (_, bytes) in crate::fuzzing::seeds::chunk_select() {
            let g = Geometry::decode(&bytes);
            assert_eq!(g.encode(), bytes);
        }
    }

    #[test]
    fn decoding_is_total() {
        for len in 0..200 {
            run(&vec![0xa5; len]);
            run(&vec![0xff; len]);
            run(&vec![0; len]);
        }
    }
}
