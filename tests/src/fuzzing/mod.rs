//! The fuzz targets of `fuzz/` as ordinary functions, so that the same code runs under
//! libFuzzer (nightly, `cargo fuzz`) and, on stable, as a replay of the committed corpus
//! (`tests/tests/fuzz_corpus.rs`).
//!
//! Each target has a module with a `run(&[u8])` function that decodes arbitrary bytes, exercises
//! the code under test and panics, with a description of the input, on any finding:
//!
//! - [`unmap`] (`unmap_sequences`): a bounded sequence of mm, CPU, GPU, migration and process
//!   operations on a small simulated [`World`](gpusvm_sim::world::World), checked by the
//!   integrity oracle, the DMA checker and the leak checker. A failure message carries the
//!   sequence as a runnable `.svm` scenario.
//! - [`parser`] (`scenario_parser`): the scenario parser never panics, and what it accepts prints
//!   back to text that parses to the same tree.
//! - [`chunk`] (`chunk_select`): range-size selection over arbitrary geometry, checked against
//!   the rules of `gpusvm_core::chunk` and against a reference model.
//!
//! Decoding is total (any byte string is an input; missing bytes read as zero) and cheap, and
//! every module can also *encode* its inputs, which the seed generators ([`seeds`]) use to write
//! meaningful starting points for the fuzzer.

pub mod chunk;
pub mod parser;
pub mod seeds;
pub mod unmap;

use std::path::{Path, PathBuf};

/// The fuzz targets, by their `cargo fuzz` names.
pub const TARGETS: &[&str] = &["unmap_sequences", "scenario_parser", "chunk_select"];

/// Runs one input of the target called `target` (one of [`TARGETS`]).
///
/// # Panics
///
/// On any finding of the target, and for an unknown target name.
pub fn run_target(target: &str, data: &[u8]) {
    match target {
        "unmap_sequences" => unmap::run(data),
        "scenario_parser" => parser::run(data),
        "chunk_select" => chunk::run(data),
        _ => panic!("unknown fuzz target {target}"),
    }
}

/// The `fuzz/` directory of the repository.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every regular file directly under `dir`, sorted (empty if `dir` does not exist).
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Reads fuzz input bytes; past the end every read yields zero, so decoding never fails.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte (zero past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// The next byte as a flag (its low bit).
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }
}

/// Writes fuzz input bytes in the layout [`Reader`] reads.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub bytes: Vec<u8>,
}

impl Writer {
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a flag.
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_what_writer_wrote_and_zeroes_past_the_end() {
        let mut w = Writer::default();
        w.u8(7);
        w.u16(0x1234);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 1);
        w.bool(true);
        let mut r = Reader::new(&w.bytes);
        assert_eq!(r.u8(), 7);
        assert_eq!(r.u16(), 0x1234);
        assert_eq!(r.u32(), 0xdead_beef);
        assert_eq!(r.u64(), u64::MAX - 1);
        assert!(r.bool());
        assert!(r.is_empty());
        assert_eq!(r.u64(), 0);
        assert!(r.is_empty());
    }
}
