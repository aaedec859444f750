//! Fuzz target `unmap_sequences`: random mm, CPU, GPU and process operation sequences on a small
//! simulated world; no corruption, DMA error, leak or panic. See `gpusvm_tests::fuzzing::unmap`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gpusvm_tests::fuzzing::unmap::run(data);
});
