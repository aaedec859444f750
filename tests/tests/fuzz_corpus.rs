//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) of every fuzz target on stable
//! Rust, through the same functions the libFuzzer targets call
//! ([`gpusvm_tests::fuzzing::run_target`]), so a regression on a corpus input fails `cargo test`
//! without nightly or cargo-fuzz.
//!
//! The generated seeds must match the committed files; `GPUSVM_WRITE_SEEDS=1 cargo test -p
//! gpusvm-tests --test fuzz_corpus` rewrites them after a change of a decoder or a generator.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gpusvm_tests::fuzzing::{corpus_files, fuzz_dir, run_target, seeds, TARGETS};

fn replay(target: &str) {
    let dir = fuzz_dir().join("corpus").join(target);
    let files = corpus_files(&dir);
    assert!(
        !files.is_empty(),
        "no corpus for {target} in {}",
        dir.display()
    );
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run_target(target, &data))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", f.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} corpus inputs of {target} fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn corpus_unmap_sequences() {
    replay("unmap_sequences");
}

#[test]
fn corpus_scenario_parser() {
    replay("scenario_parser");
}

#[test]
fn corpus_chunk_select() {
    replay("chunk_select");
}

#[test]
fn generated_seeds_are_committed() {
    let write = std::env::var_os("GPUSVM_WRITE_SEEDS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for target in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        if write {
            seeds::write(target, &dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        for (name, bytes) in seeds::for_target(target) {
            let path = dir.join(&name);
            if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
                stale.push(path.display().to_string());
            }
        }
    }
    let traces = gpusvm_tests::scenario_dir().join(seeds::TRACE_DIR);
    if write {
        std::fs::create_dir_all(&traces).unwrap_or_else(|e| panic!("{}: {e}", traces.display()));
    }
    for (name, text) in seeds::unmap_traces() {
        let path = traces.join(&name);
        if write {
            std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(format!(
                "{} (the seed's behaviour changed; diff it before regenerating)",
                path.display()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "seed files missing or out of date (regenerate with GPUSVM_WRITE_SEEDS=1):\n{}",
        stale.join("\n")
    );
}

/// Triage helper, not a check: prints the `.svm` trace of each `unmap_sequences` input named by
/// `FUZZ_INPUT` (files or directories, `:`-separated, relative to the repository root or
/// absolute; default: the committed corpus).
///
/// `FUZZ_INPUT=fuzz/artifacts/unmap_sequences/crash-... cargo test -p gpusvm-tests --test
/// fuzz_corpus -- --ignored --nocapture print_unmap_traces`
#[test]
#[ignore = "triage helper: prints traces"]
fn print_unmap_traces() {
    use gpusvm_tests::fuzzing::unmap::{trace, Program};
    let default = fuzz_dir().join("corpus/unmap_sequences");
    let inputs: Vec<std::path::PathBuf> = match std::env::var_os("FUZZ_INPUT") {
        Some(v) => std::env::split_paths(&v).collect(),
        None => vec![default],
    };
    for input in inputs {
        // `cargo test` runs in `tests/`: take relative paths from the repository root too.
        let input = if input.exists() {
            input
        } else {
            fuzz_dir().join("..").join(input)
        };
        let files = if input.is_dir() {
            corpus_files(&input)
        } else {
            vec![input]
        };
        for f in files {
            match std::fs::read(&f) {
                Ok(data) => println!("# ---- {}\n{}", f.display(), trace(&Program::decode(&data))),
                Err(e) => eprintln!("{}: {e}", f.display()),
            }
        }
    }
}
