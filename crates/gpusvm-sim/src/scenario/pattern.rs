//! The byte patterns of `fill=` and `expect=`.
//!
//! `seed:N` must be a *documented* deterministic function of the seed and the absolute address,
//! so any sub-span written with it can be checked later, by any tool, without remembering what
//! was written. The function is [`seed_byte`]; its formula is part of the scenario contract and
//! must never change.

use std::fmt;

use super::ast::{Fill, Pattern};

/// The SplitMix64 increment (2^64 divided by the golden ratio), also used to spread the seed.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// One step of SplitMix64 (Steele, Lea and Flood 2014): a bijective 64-bit mixer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The byte `seed:N` puts at absolute address `addr`.
///
/// One SplitMix64 value covers each aligned 8-byte word; the byte at `addr` is that word's byte
/// at `addr`'s offset in the word (little-endian). The exact formula, all arithmetic modulo 2^64:
///
/// ```text
/// x = (seed * 0x9E3779B97F4A7C15) XOR (addr AND NOT 7)
/// z = x + 0x9E3779B97F4A7C15
/// z = (z XOR (z >> 30)) * 0xBF58476D1CE4E5B9
/// z = (z XOR (z >> 27)) * 0x94D049BB133111EB
/// z = z XOR (z >> 31)
/// seed_byte = (z >> (8 * (addr AND 7))) AND 0xFF
/// ```
///
/// That is SplitMix64 applied to `seed * golden ^ word address`. Multiplying the seed by the
/// (odd) golden-ratio constant keeps nearby seeds from producing shifted copies of each other's
/// pattern; one mix per word keeps filling and checking gigabytes cheap.
///
/// # Examples
///
/// ```
/// use gpusvm_sim::scenario::pattern::seed_byte;
///
/// // Deterministic: the same (seed, address) always gives the same byte.
/// assert_eq!(seed_byte(1, 0x1000), seed_byte(1, 0x1000));
/// assert_eq!(seed_byte(0, 0), 0xAF);
/// ```
pub fn seed_byte(seed: u64, addr: u64) -> u8 {
    // Truncation to the selected byte is the documented formula.
    (seed_word(seed, addr & !7) >> (8 * (addr & 7))) as u8
}

/// The SplitMix64 word of `seed:N` for the aligned word at `word_addr`.
fn seed_word(seed: u64, word_addr: u64) -> u64 {
    splitmix64(seed.wrapping_mul(GOLDEN_GAMMA) ^ word_addr)
}

/// Calls `f(i, byte)` for the pattern bytes of `len` bytes from `addr` (one mix per word) until
/// `f` returns false.
fn seed_bytes(seed: u64, addr: u64, len: usize, mut f: impl FnMut(usize, u8) -> bool) {
    let mut i = 0usize;
    while i < len {
        let a = addr.wrapping_add(i as u64);
        let bytes = seed_word(seed, a & !7).to_le_bytes();
        for &b in bytes.iter().skip((a & 7) as usize) {
            if i >= len || !f(i, b) {
                return;
            }
            i += 1;
        }
    }
}

/// Fills `out` as a write of `fill` starting at absolute address `addr` would: `out[i]` gets the
/// byte for address `addr + i` (wrapping at 2^64).
pub fn fill_bytes(fill: &Fill, addr: u64, out: &mut [u8]) {
    match *fill {
        Fill::Byte(b) => out.fill(b),
        Fill::Seed(seed) => seed_bytes(seed, addr, out.len(), |i, b| {
            if let Some(slot) = out.get_mut(i) {
                *slot = b;
            }
            true
        }),
    }
}

/// The first byte where data read back differs from the expected pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// The offset of the byte from the start of the checked span.
    pub offset: u64,
    /// The byte the pattern requires there.
    pub expected: u8,
    /// The byte actually found (0 if the data is too short to have one).
    pub found: u8,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at offset {:#x}: expected {:#04x}, found {:#04x}",
            self.offset, self.expected, self.found
        )
    }
}

impl std::error::Error for Mismatch {}

/// Checks that `data`, read from absolute address `addr`, matches `pattern`, and reports the
/// first byte that does not.
///
/// For [`Pattern::U64`] the data must be exactly 8 bytes equal to the value's little-endian
/// bytes; any other length is a mismatch at offset 0 (where `expected` and `found` describe
/// byte 0 and may then be equal).
pub fn check_bytes(pattern: &Pattern, addr: u64, data: &[u8]) -> Result<(), Mismatch> {
    let mismatch = |offset: usize, expected: u8, found: u8| Mismatch {
        // usize -> u64 never truncates on the targets Rust supports.
        offset: offset as u64,
        expected,
        found,
    };
    match *pattern {
        Pattern::Byte(b) => match data.iter().position(|&d| d != b) {
            Some(i) => Err(mismatch(i, b, data.get(i).copied().unwrap_or(0))),
            None => Ok(()),
        },
        Pattern::Seed(seed) => {
            let mut first_bad = None;
            seed_bytes(seed, addr, data.len(), |i, expected| {
                let found = data.get(i).copied().unwrap_or(0);
                if found != expected {
                    first_bad = Some(mismatch(i, expected, found));
                }
                first_bad.is_none()
            });
            first_bad.map_or(Ok(()), Err)
        }
        Pattern::U64(value) => {
            let want = value.to_le_bytes();
            if data.len() != want.len() {
                return Err(mismatch(0, want[0], data.first().copied().unwrap_or(0)));
            }
            match want.iter().zip(data).position(|(w, d)| w != d) {
                Some(i) => Err(mismatch(
                    i,
                    want.get(i).copied().unwrap_or(0),
                    data.get(i).copied().unwrap_or(0),
                )),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_vectors() {
        // The first outputs of the reference SplitMix64 generator seeded with 0 (state is
        // advanced by the gamma before mixing, exactly as `splitmix64` does).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(GOLDEN_GAMMA), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(
            splitmix64(GOLDEN_GAMMA.wrapping_mul(2)),
            0x06C4_5D18_8009_454F
        );
    }

    #[test]
    fn seed_byte_follows_documented_formula() {
        assert_eq!(seed_byte(0, 0), 0xAF);
        for (seed, addr) in [
            (1u64, 0x1000u64),
            (7, 0x7fff_0000_1234),
            (u64::MAX, u64::MAX),
        ] {
            let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (addr & !7);
            let shift = 8 * (addr & 7);
            assert_eq!(
                seed_byte(seed, addr),
                ((splitmix64(x) >> shift) & 0xFF) as u8
            );
        }
    }

    #[test]
    fn bulk_fill_and_check_agree_with_seed_byte_at_any_alignment() {
        for start in 0..16u64 {
            let addr = 0x7000 + start;
            let mut buf = vec![0u8; 37];
            fill_bytes(&Fill::Seed(9), addr, &mut buf);
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, seed_byte(9, addr + i as u64));
            }
            assert!(check_bytes(&Pattern::Seed(9), addr, &buf).is_ok());
            buf[20] ^= 1;
            let m = check_bytes(&Pattern::Seed(9), addr, &buf).unwrap_err();
            assert_eq!(m.offset, 20);
        }
    }

    #[test]
    fn seed_pattern_depends_on_seed_and_address() {
        let a: Vec<u8> = (0..256).map(|i| seed_byte(1, 0x1000 + i)).collect();
        let b: Vec<u8> = (0..256).map(|i| seed_byte(2, 0x1000 + i)).collect();
        let shifted: Vec<u8> = (0..256).map(|i| seed_byte(1, 0x1001 + i)).collect();
        assert_ne!(a, b);
        assert_ne!(a, shifted);
        // Not a constant pattern: plenty of distinct values in 256 bytes.
        let mut seen = [false; 256];
        for &v in &a {
            seen[usize::from(v)] = true;
        }
        assert!(seen.iter().filter(|&&s| s).count() > 100);
    }

    #[test]
    fn fill_then_check_sub_spans() {
        let base = 0x20_0000;
        let mut buf = vec![0u8; 8192];
        fill_bytes(&Fill::Seed(3), base, &mut buf);
        assert_eq!(check_bytes(&Pattern::Seed(3), base, &buf), Ok(()));
        // Any sub-span checks against its own absolute address.
        let sub = &buf[100..4196];
        assert_eq!(check_bytes(&Pattern::Seed(3), base + 100, sub), Ok(()));
        assert!(check_bytes(&Pattern::Seed(3), base + 101, sub).is_err());
        assert!(check_bytes(&Pattern::Seed(4), base, &buf).is_err());

        fill_bytes(&Fill::Byte(7), base, &mut buf);
        assert!(buf.iter().all(|&b| b == 7));
        assert_eq!(check_bytes(&Pattern::Byte(7), base, &buf), Ok(()));
    }

    #[test]
    fn fill_wraps_at_the_top_of_the_address_space() {
        let mut buf = [0u8; 4];
        fill_bytes(&Fill::Seed(9), u64::MAX - 1, &mut buf);
        assert_eq!(buf[2], seed_byte(9, 0));
        assert_eq!(check_bytes(&Pattern::Seed(9), u64::MAX - 1, &buf), Ok(()));
    }

    #[test]
    fn check_reports_first_mismatch() {
        let mut buf = vec![5u8; 64];
        buf[17] = 6;
        buf[40] = 0;
        assert_eq!(
            check_bytes(&Pattern::Byte(5), 0, &buf),
            Err(Mismatch {
                offset: 17,
                expected: 5,
                found: 6
            })
        );

        let mut seeded = vec![0u8; 64];
        fill_bytes(&Fill::Seed(1), 0x4000, &mut seeded);
        seeded[33] ^= 0xFF;
        let err = check_bytes(&Pattern::Seed(1), 0x4000, &seeded).unwrap_err();
        assert_eq!(err.offset, 33);
        assert_eq!(err.expected, seed_byte(1, 0x4000 + 33));
        assert_eq!(err.found, seed_byte(1, 0x4000 + 33) ^ 0xFF);
        assert_eq!(
            err.to_string(),
            format!(
                "at offset 0x21: expected {:#04x}, found {:#04x}",
                err.expected, err.found
            )
        );
    }

    #[test]
    fn check_u64_values() {
        let v: u64 = 0x0102_0304_0506_0708;
        assert_eq!(check_bytes(&Pattern::U64(v), 0, &v.to_le_bytes()), Ok(()));
        assert_eq!(
            check_bytes(&Pattern::U64(101), 0, &100u64.to_le_bytes()),
            Err(Mismatch {
                offset: 0,
                expected: 101,
                found: 100
            })
        );
        let mut bytes = 100u64.to_le_bytes();
        bytes[6] = 1;
        assert_eq!(
            check_bytes(&Pattern::U64(100), 0, &bytes),
            Err(Mismatch {
                offset: 6,
                expected: 0,
                found: 1
            })
        );
        // A wrong length is a mismatch at offset 0.
        let err = check_bytes(&Pattern::U64(100), 0, &[100, 0, 0, 0]).unwrap_err();
        assert_eq!(err.offset, 0);
        let err = check_bytes(&Pattern::U64(100), 0, &[]).unwrap_err();
        assert_eq!((err.offset, err.expected, err.found), (0, 100, 0));
        assert!(check_bytes(&Pattern::U64(0), 0, &[0; 16]).is_err());
    }

    #[test]
    fn empty_data_matches_byte_and_seed_patterns() {
        assert_eq!(check_bytes(&Pattern::Byte(1), 0, &[]), Ok(()));
        assert_eq!(check_bytes(&Pattern::Seed(1), 0, &[]), Ok(()));
    }
}
