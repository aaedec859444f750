//! Every scenario in `tests/scenarios/` (which includes copies of the brief's examples) and, when
//! present, in `../shared/scenarios/` must pass: expected outcomes, integrity oracle, leak checker.

use gpusvm_sim::run::{run_scenario, summary, RunOptions};
use gpusvm_sim::scenario::parse;
use gpusvm_tests::{load_scenario, scenario_dir, svm_files};

fn run_dir(dir: &std::path::Path) -> usize {
    let files = svm_files(dir);
    let mut results = Vec::new();
    for f in &files {
        let (name, sc) = load_scenario(f);
        results.push(run_scenario(&name, &sc, &RunOptions::default()));
    }
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "\n{}", summary(&results));
    files.len()
}

#[test]
fn repository_scenarios_pass() {
    let n = run_dir(&scenario_dir());
    assert!(
        n >= 7,
        "expected at least the 7 example scenarios, found {n}"
    );
}

/// The brief's examples where the workspace has them (`../shared/scenarios/`); the repository
/// keeps byte-identical copies in `tests/scenarios/examples/`, which run everywhere, and this
/// test also checks that the copies have not drifted.
#[test]
fn shared_example_scenarios_pass() {
    let shared = scenario_dir().join("../../../shared/scenarios");
    if !shared.is_dir() {
        eprintln!(
            "note: {} not present; its copies in tests/scenarios/examples/ run instead",
            shared.display()
        );
        return;
    }
    let n = run_dir(&shared);
    assert!(n > 0, "no scenarios in {}", shared.display());
    for f in svm_files(&shared) {
        let copy = scenario_dir()
            .join("examples")
            .join(f.file_name().expect("a file name"));
        assert_eq!(
            std::fs::read(&f).ok(),
            std::fs::read(&copy).ok(),
            "{} and its copy {} differ",
            f.display(),
            copy.display()
        );
    }
}

#[test]
fn scenarios_that_must_fail_do_fail() {
    // The harness is only worth something if it can fail: wrong data, wrong residency, a leak of
    // nothing, a wrong errno — each must be reported.
    let cases = [
        (
            "mmap A size=2M align=2M\ncpu write A fill=seed:1\ngpu read A expect=seed:2\n",
            "does not match",
        ),
        (
            "mmap A size=64K\ncpu write A fill=3\nprefetch A to=vram\nexpect residency A in=ram\n",
            "pages are Vram",
        ),
        (
            "mmap A size=64K\nmprotect A prot=r\ngpu write A fill=1\n",
            "expected ok, got EPERM",
        ),
        (
            "mmap A size=64K\ncpu read A len=4K -> SEGV\n",
            "expected SEGV, got ok",
        ),
        (
            "mmap A size=64K\ncpu write A fill=1\ngpu read A\nexpect ranges == 2\n",
            "there are 1 ranges",
        ),
        // Untouched memory below check_pages_threshold gets single-page ranges (upstream §3.2 b).
        (
            "mmap A size=64K\ngpu read A\nexpect ranges == 1\n",
            "there are 16 ranges",
        ),
        (
            "mmap A size=2M align=2M\ngpu read A\nexpect chunk A == 64K\n",
            "range there is 0x200000",
        ),
    ];
    for (text, needle) in cases {
        let sc = parse("neg.svm", text).expect("valid syntax");
        let r = run_scenario("neg.svm", &sc, &RunOptions::default());
        assert!(!r.passed, "should fail:\n{text}");
        let all = r.failures.join("\n");
        assert!(all.contains(needle), "failure for\n{text}\nwas: {all}");
    }
}
