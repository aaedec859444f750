//! Fuzz target `scenario_parser`: the scenario parser never panics and round-trips what it
//! accepts. See `gpusvm_tests::fuzzing::parser`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gpusvm_tests::fuzzing::parser::run(data);
});
