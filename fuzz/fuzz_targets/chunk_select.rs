//! Fuzz target `chunk_select`: range-size selection over arbitrary geometry follows the rules of
//! `gpusvm_core::chunk`. See `gpusvm_tests::fuzzing::chunk`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gpusvm_tests::fuzzing::chunk::run(data);
});
