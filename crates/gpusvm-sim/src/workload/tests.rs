//! Tests of the workloads, their reports, the residency map and the command line.
//!
//! Every workload runs at a small size (debug builds are slow) and must pass its own checks, the
//! integrity oracle and the leak check, and report plausible numbers. The JSON report is checked
//! with a small validating parser, the SVG with a small well-formedness checker.

use super::session::{Collect, OrFail, Session};
use super::*;
use crate::mm::{MapKind, Prot, Pte};

/// Runs workload `name` with `f` applied to its default parameters; asserts it passed.
fn run_ok(name: &str, f: impl FnOnce(&mut Params)) -> Outcome {
    let w = find(name).expect("known workload");
    let mut p = w.default_params();
    f(&mut p);
    let o = run(
        w,
        &p,
        Settings {
            svg: true,
            progress: false,
        },
    )
    .expect("valid configuration");
    assert!(
        o.report.passed,
        "{name} {p:?} failed: {:?}",
        o.report.failures
    );
    assert!(o.report.failures.is_empty());
    assert_eq!(o.report.steps, p.steps, "{name} ran every step");
    assert!(o.report.batches > p.steps);
    o
}

#[test]
fn stream_migrates_to_vram_and_verifies_the_triad() {
    let o = run_ok("stream", |p| {
        p.size = 768 * K;
        p.steps = 3;
    });
    let t = &o.report.totals;
    assert!(t.migrations_to_vram > 0, "{t:?}");
    assert!(
        t.bytes_to_vram >= 3 * 256 * K,
        "every array went to VRAM: {t:?}"
    );
    assert!(
        t.migrations_to_ram > 0,
        "the CPU read-back brings a back: {t:?}"
    );
    assert!(t.gpu_faults > 0 && t.cpu_faults > 0);
    assert!(o.report.copy_calls > 0 && o.report.copy_bytes >= t.bytes_to_vram);
    assert!(o.report.dma_mappings > 0);
    // 256K arrays at 2M alignment: 64K chunks.
    assert_eq!(o.report.ranges_peak.get(&(64 * K)), Some(&12));
    assert!(
        o.report.notes[0].contains("a = b + 3*c"),
        "{:?}",
        o.report.notes
    );
}

#[test]
fn stream_with_threads_and_two_devices() {
    let o = run_ok("stream", |p| {
        p.size = 12 * M;
        p.steps = 1;
        p.threads = 2;
        p.devices = 2;
    });
    assert!(o.report.totals.migrations_to_vram >= 6);
}

#[test]
fn random_touches_are_checked() {
    let o = run_ok("random", |p| {
        p.size = 4 * M;
        p.steps = 2;
        p.threads = 3;
    });
    let t = &o.report.totals;
    assert!(t.gpu_faults > 0 && t.cpu_faults > 0, "{t:?}");
    assert!(
        o.report.notes[0].starts_with("256 touches"),
        "{:?}",
        o.report.notes
    );
}

#[test]
fn churn_reuses_addresses_and_leaves_no_range() {
    let o = run_ok("churn", |p| {
        p.size = M;
        p.steps = 3;
    });
    assert!(o.report.ranges_final.is_empty());
    assert!(o.report.totals.ranges_created > 0);
    assert!(o.report.ranges_peak.contains_key(&(4 * K)));
    assert!(o.report.notes[0].contains("no range left"));
}

#[test]
fn oversubscribe_evicts() {
    let o = run_ok("oversubscribe", |p| {
        p.size = 4 * M;
        p.vram = 2 * M;
        p.steps = 2;
    });
    let t = &o.report.totals;
    assert!(t.evictions > 0, "{t:?}");
    assert!(t.migrations_to_vram > 0 && t.migrations_to_ram > 0);
}

#[test]
fn oversubscribe_refuses_data_that_fits() {
    let w = find("oversubscribe").expect("known");
    let mut p = w.default_params();
    p.size = p.vram;
    assert!((w.validate)(&p).is_err());
}

#[test]
fn atomics_end_with_exact_counters() {
    let o = run_ok("atomics", |p| p.steps = 3);
    let t = &o.report.totals;
    let expected = 3 * (atomics::GPU_ADDS + 1);
    assert!(
        o.report.notes[0].contains(&format!("exactly {expected} ")),
        "{:?}",
        o.report.notes
    );
    // Rounds 0 and 2 ping-pong per counter (a migration each way per counter), round 1 is a
    // kernel then a host pass (one each way); each CPU visit to VRAM waits out the timeslice.
    assert_eq!(t.migrations_to_vram, 2 * atomics::COUNTERS + 1);
    assert_eq!(t.migrations_to_ram, 2 * atomics::COUNTERS + 1);
    assert!(t.cpu_device_faults > t.migrations_to_ram);
}

#[test]
fn atomics_on_two_devices_with_threads() {
    let o = run_ok("atomics", |p| {
        p.size = 4 * K;
        p.steps = 2;
        p.devices = 2;
        p.threads = 4;
    });
    assert!(o.report.notes[0].contains("exactly 18 "));
}

#[test]
fn unmap_storm_leaves_no_range_over_unmapped_memory() {
    let o = run_ok("unmap-storm", |p| {
        p.size = 2 * M;
        p.steps = 3;
    });
    assert!(o.report.ranges_final.is_empty());
    assert!(o.report.totals.invalidations > 0);
    assert!(o.report.notes[0].contains("no range over unmapped memory"));
}

#[test]
fn multiproc_runs_four_processes() {
    let o = run_ok("multiproc", |p| {
        p.size = 512 * K;
        p.steps = 2;
        p.devices = 2;
    });
    let names: Vec<&str> = o.report.processes.iter().map(|p| p.0.as_str()).collect();
    for n in ["p0", "child1", "child2", "peer"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(o.report.notes[0].contains("child2 exited in step 2"));
    assert!(o.report.processes.iter().all(|(_, s)| s.gpu_faults > 0));
}

#[test]
fn runs_are_deterministic_from_the_seed() {
    let counters = |seed: u64| {
        let mut o = run_ok("random", |p| {
            p.size = M;
            p.steps = 1;
            p.seed = seed;
        });
        o.report.totals.core_ns = 0;
        (o.report.totals, o.report.notes)
    };
    assert_eq!(counters(5), counters(5));
    assert_ne!(counters(5).1, counters(6).1);
}

#[test]
fn corruption_fails_the_run() {
    let p = find("stream").expect("known").default_params();
    let mut s = Session::new("test", &p, Collect::default()).expect("config");
    let result = (|| {
        let a = s.mmap("a", 2 * PAGE_SIZE, PAGE_SIZE)?;
        s.run(|w| session::cpu_fill(w, a, PAGE_SIZE, 7))?;
        // Flip a byte behind the simulator's back.
        let pte = s.world.current().or_fail(String::new)?.mm.pte(a);
        let Some(Pte::Present { pfn, .. }) = pte else {
            panic!("the page is present after a CPU write: {pte:?}");
        };
        let mut b = [0u8; 1];
        s.world.shared.frames.read(pfn, 5, &mut b);
        s.world.shared.frames.write(pfn, 5, &[!b[0]]);
        s.run(|w| session::cpu_check(w, a, PAGE_SIZE, 7))
    })();
    let report = s.finish(result).report;
    assert!(!report.passed);
    assert!(
        report.failures[0].starts_with("data corruption during CPU read"),
        "{:?}",
        report.failures
    );
}

#[test]
fn leaks_fail_the_run() {
    let p = find("stream").expect("known").default_params();
    let s = Session::new("test", &p, Collect::default()).expect("config");
    // A DMA mapping nobody unmaps.
    let dma = s.world.shared.devices()[0].dma.clone();
    gpusvm_core::DmaDevice::map_page(&dma, 0x1234, 0, gpusvm_core::DmaDirection::ToDevice)
        .expect("map");
    s.world
        .mmap("x", PAGE_SIZE, None, None, Prot::Rw, MapKind::Anon)
        .expect("mmap");
    let report = s.finish(Ok(())).report;
    assert!(!report.passed);
    assert!(
        report.failures[0].starts_with("leak at teardown: device 0: 1 live DMA mappings"),
        "{:?}",
        report.failures
    );
}

#[test]
fn the_demo_passes() {
    let report = demo::run().expect("demo config");
    assert!(report.passed, "{:?}", report.failures);
    assert_eq!(report.steps, 7);
    assert!(report.totals.evictions > 0);
    assert!(report.totals.migrations_to_vram > 0 && report.totals.migrations_to_ram > 0);
}

// ------------------------------------------------------------------------------------- JSON

/// A parsed JSON value (just enough to validate reports).
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn num(&self, key: &str) -> f64 {
        match self.get(key) {
            Some(Json::Num(n)) => *n,
            other => panic!("{key} is not a number: {other:?}"),
        }
    }
}

/// Whether `t` follows JSON's number grammar:
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn json_number(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A strict recursive-descent JSON parser (RFC 8259), whole input.
fn parse_json(s: &str) -> Result<Json, String> {
    struct P<'a>(&'a [u8], usize);
    impl P<'_> {
        fn ws(&mut self) {
            while self.1 < self.0.len() && b" \t\r\n".contains(&self.0[self.1]) {
                self.1 += 1;
            }
        }
        fn eat(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.0.get(self.1) == Some(&c) {
                self.1 += 1;
                Ok(())
            } else {
                Err(format!("expected '{}' at {}", c as char, self.1))
            }
        }
        fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
            if self.0[self.1..].starts_with(word.as_bytes()) {
                self.1 += word.len();
                Ok(v)
            } else {
                Err(format!("bad literal at {}", self.1))
            }
        }
        fn string(&mut self) -> Result<String, String> {
            self.eat(b'"')?;
            let mut out = String::new();
            loop {
                let c = *self.0.get(self.1).ok_or("unterminated string")?;
                self.1 += 1;
                match c {
                    b'"' => return Ok(out),
                    b'\\' => {
                        let e = *self.0.get(self.1).ok_or("bad escape")?;
                        self.1 += 1;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e as char),
                            b'n' => out.push('\n'),
                            b't' => out.push('\t'),
                            b'r' => out.push('\r'),
                            b'b' | b'f' => {}
                            b'u' => {
                                let hex = std::str::from_utf8(&self.0[self.1..self.1 + 4])
                                    .map_err(|e| e.to_string())?;
                                let v = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                out.push(char::from_u32(v).unwrap_or('?'));
                                self.1 += 4;
                            }
                            _ => return Err(format!("bad escape at {}", self.1)),
                        }
                    }
                    c if c < 0x20 => return Err("control character in string".into()),
                    _ => {
                        // Copy the whole UTF-8 sequence.
                        let start = self.1 - 1;
                        let mut end = self.1;
                        while end < self.0.len() && (self.0[end] & 0xC0) == 0x80 {
                            end += 1;
                        }
                        out.push_str(
                            std::str::from_utf8(&self.0[start..end]).map_err(|e| e.to_string())?,
                        );
                        self.1 = end;
                    }
                }
            }
        }
        fn value(&mut self) -> Result<Json, String> {
            self.ws();
            match self.0.get(self.1).copied().ok_or("unexpected end")? {
                b'{' => {
                    self.1 += 1;
                    let mut kv = Vec::new();
                    self.ws();
                    if self.0.get(self.1) == Some(&b'}') {
                        self.1 += 1;
                        return Ok(Json::Obj(kv));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.eat(b':')?;
                        kv.push((k, self.value()?));
                        self.ws();
                        match self.0.get(self.1) {
                            Some(b',') => self.1 += 1,
                            Some(b'}') => {
                                self.1 += 1;
                                return Ok(Json::Obj(kv));
                            }
                            _ => return Err(format!("expected , or }} at {}", self.1)),
                        }
                    }
                }
                b'[' => {
                    self.1 += 1;
                    let mut v = Vec::new();
                    self.ws();
                    if self.0.get(self.1) == Some(&b']') {
                        self.1 += 1;
                        return Ok(Json::Arr(v));
                    }
                    loop {
                        v.push(self.value()?);
                        self.ws();
                        match self.0.get(self.1) {
                            Some(b',') => self.1 += 1,
                            Some(b']') => {
                                self.1 += 1;
                                return Ok(Json::Arr(v));
                            }
                            _ => return Err(format!("expected , or ] at {}", self.1)),
                        }
                    }
                }
                b'"' => self.string().map(Json::Str),
                b't' => self.lit("true", Json::Bool(true)),
                b'f' => self.lit("false", Json::Bool(false)),
                b'n' => self.lit("null", Json::Null),
                _ => {
                    let start = self.1;
                    while self.1 < self.0.len() && b"+-0123456789.eE".contains(&self.0[self.1]) {
                        self.1 += 1;
                    }
                    let text =
                        std::str::from_utf8(&self.0[start..self.1]).map_err(|e| e.to_string())?;
                    match text.parse::<f64>() {
                        Ok(n) if json_number(text) => Ok(Json::Num(n)),
                        _ => Err(format!("bad number '{text}' at {start}")),
                    }
                }
            }
        }
    }
    let mut p = P(s.as_bytes(), 0);
    let v = p.value()?;
    p.ws();
    if p.1 != s.len() {
        return Err(format!("trailing data at {}", p.1));
    }
    Ok(v)
}

#[test]
fn the_json_parser_rejects_malformed_input() {
    for bad in [
        "",
        "{",
        "{\"a\":}",
        "[1,]",
        "{\"a\":1,}",
        "01",
        "1.",
        "\"x",
        "{} x",
        "nul",
    ] {
        assert!(parse_json(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_json(" {\"a\":[1,-2.5e3,true,null,\"\\u00e9\\n\"]} "),
        Ok(Json::Obj(vec![(
            "a".into(),
            Json::Arr(vec![
                Json::Num(1.0),
                Json::Num(-2500.0),
                Json::Bool(true),
                Json::Null,
                Json::Str("é\n".into())
            ])
        )]))
    );
}

#[test]
fn the_json_report_parses_and_has_every_key() {
    let mut o = run_ok("churn", |p| {
        p.size = M;
        p.steps = 1;
    });
    o.report.failures.push("a \"quoted\"\nfailure\\".into());
    let text = crate::report::workload_json(&o.report);
    let j = parse_json(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    for key in [
        "workload",
        "passed",
        "failures",
        "notes",
        "params",
        "steps",
        "batches",
        "wall_ms",
        "gpu_faults_per_second",
        "core_ns_per_gpu_fault",
        "totals",
        "processes",
        "ranges",
        "copy_engine",
        "dma_mappings_made",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {text}");
    }
    assert_eq!(j.get("workload"), Some(&Json::Str("churn".into())));
    let Some(Json::Arr(failures)) = j.get("failures") else {
        panic!("failures is an array");
    };
    assert_eq!(failures[0], Json::Str("a \"quoted\"\nfailure\\".into()));
    let totals = j.get("totals").expect("totals");
    assert_eq!(totals.num("gpu_faults"), o.report.totals.gpu_faults as f64);
    for key in [
        "migrations_to_vram",
        "bytes_to_ram",
        "evictions",
        "retries",
        "tlb_invalidations",
        "cpu_faults",
    ] {
        totals.num(key);
    }
    assert_eq!(j.get("params").expect("params").num("size"), M as f64);
    let peak = j.get("ranges").and_then(|r| r.get("peak")).expect("peak");
    assert!(peak.num("total") > 0.0);
    assert!(matches!(peak.get("by_size"), Some(Json::Obj(v)) if !v.is_empty()));
    assert!(j.get("copy_engine").expect("copy").num("calls") > 0.0);
}

// -------------------------------------------------------------------------------------- SVG

/// Checks that `svg` is well-formed XML as far as tags go: every element closes in order.
fn check_tags(svg: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let end = after.find('>').ok_or("unclosed tag")?;
        let tag = &after[..end];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            let name = tag.split_whitespace().next().ok_or("empty tag")?;
            stack.push(name);
        }
        if tag.contains('<') {
            return Err(format!("'<' inside tag {tag}"));
        }
        rest = &after[end + 1..];
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed elements {stack:?}"))
    }
}

#[test]
fn the_residency_map_is_well_formed_and_labelled() {
    let o = run_ok("oversubscribe", |p| {
        p.size = 4 * M;
        p.vram = 2 * M;
        p.steps = 2;
        p.devices = 2;
    });
    let svg = o.svg.expect("asked for an SVG");
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    check_tags(&svg).unwrap_or_else(|e| panic!("{e}"));
    for text in [
        ">buffer 0</text>",
        ">buffer 3</text>",
        ">RAM</text>",
        ">VRAM GPU 0</text>",
        ">VRAM GPU 1</text>",
        ">not populated</text>",
        "gpusvm-sim workload oversubscribe",
        "class=\"legend\"",
    ] {
        assert!(svg.contains(text), "no {text}");
    }
    assert!(svg.len() < 1 << 20, "{} bytes", svg.len());
    assert!(check_tags("<svg><g></svg>").is_err());
}

#[test]
fn the_svg_is_written_atomically_and_errors_are_reported() {
    let dir = std::env::temp_dir().join(format!("gpusvm-svg-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("map.svg");
    let path_str = path.to_str().expect("UTF-8 temp path");
    write_atomically(path_str, "<svg/>").expect("written");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "<svg/>");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "map.svg")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let bad = dir.join("missing").join("map.svg");
    let e = write_atomically(bad.to_str().expect("UTF-8"), "x").expect_err("no such directory");
    assert!(e.starts_with("cannot write"), "{e}");
    assert!(check_writable_location(bad.to_str().expect("UTF-8")).is_err());
    assert!(check_writable_location(dir.to_str().expect("UTF-8")).is_err());
    assert!(check_writable_location(path_str).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------- the CLI

fn status(args: &str) -> u8 {
    let v: Vec<String> = args.split_whitespace().map(String::from).collect();
    cli_status(&v)
}

#[test]
fn bad_arguments_exit_with_status_2() {
    for bad in [
        "",
        "nosuch",
        "stream --size",
        "stream --size lots",
        "stream --devices 100",
        "stream --bogus",
        "oversubscribe --size 2M --vram 4M",
        "stream --svg /nonexistent-dir/x.svg",
    ] {
        assert_eq!(status(bad), 2, "{bad:?}");
    }
    assert_eq!(status("--help"), 0);
    assert_eq!(status("atomics --help"), 0);
}

#[test]
fn a_small_run_through_the_cli_exits_0() {
    assert_eq!(
        status("atomics --size 4K --steps 1 --json --no-progress"),
        0
    );
}

const PAGE_SIZE: u64 = crate::mem::PAGE;
