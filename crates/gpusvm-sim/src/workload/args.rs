//! Command-line parsing of `gpusvm-sim workload`: options, sizes with suffixes, the help text.
//!
//! Parsing never panics: every malformed argument becomes an error message naming the argument,
//! which the caller prints with the usage and exits with status 2.

use std::fmt::Write as _;

use super::{size_arg, Params, Workload, WORKLOADS};

/// The largest `--size`: the simulator backs every byte with host memory (twice: the frame and
/// the integrity oracle's shadow copy).
pub const MAX_SIZE: u64 = 4 << 30;
/// The largest `--vram` per device.
pub const MAX_VRAM: u64 = 64 << 30;
/// The smallest `--vram`: one 2 MiB range must fit.
pub const MIN_VRAM: u64 = 2 << 20;
/// The most simulated threads.
pub const MAX_THREADS: u32 = 64;
/// The most steps.
pub const MAX_STEPS: u64 = 1_000_000;
/// The most GPUs (the simulator's limit).
pub const MAX_DEVICES: u32 = 8;
/// The page size sizes are rounded to.
const PAGE: u64 = crate::mem::PAGE;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Print the help.
    Help,
    /// Run a workload.
    Run(Invocation),
}

/// A parsed `gpusvm-sim workload NAME ...`.
#[derive(Debug)]
pub struct Invocation {
    /// The workload.
    pub workload: &'static Workload,
    /// Its parameters, defaults filled in.
    pub params: Params,
    /// `--json`.
    pub json: bool,
    /// `--svg FILE`.
    pub svg: Option<String>,
    /// `--no-progress`.
    pub no_progress: bool,
}

/// Parses a number: decimal or `0x` hexadecimal.
pub fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if s.chars().all(|c| c.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// Parses a size: a number with an optional binary suffix `K`, `M` or `G` (either case).
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n = parse_number(digits)?;
    n.checked_mul(1u64 << shift)
}

/// Width the help text is wrapped to.
const HELP_WIDTH: usize = 96;

/// Splits `text` into lines of at most `width` characters at spaces (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The help text, listing every workload with its defaults.
pub fn help() -> String {
    let mut s = String::from(
        "\
usage: gpusvm-sim workload NAME [--size SIZE] [--vram SIZE] [--devices N] [--threads N]
                              [--seed N] [--steps N] [--json] [--svg FILE] [--no-progress]

Runs a synthetic workload on a fresh simulated world: every byte read is checked against what
was written, the world is torn down at the end and nothing may leak. Prints a report (text, or
JSON with --json). Exit status: 0 if the run passed; 1 on data corruption, a DMA error, a leak
or an unexpected error; 2 on bad arguments.

workloads (defaults in brackets):
",
    );
    for w in &WORKLOADS {
        let defaults = format!(
            "[--size {} --vram {} --steps {}]",
            size_arg(w.default_size),
            size_arg(w.default_vram),
            w.default_steps
        );
        let text = format!("{}. --size: {}. {defaults}", w.summary, w.size_means);
        for (i, line) in wrap(&text, HELP_WIDTH - 17).iter().enumerate() {
            let name = if i == 0 { w.name } else { "" };
            let _ = writeln!(s, "  {name:<14} {line}");
        }
    }
    let _ = write!(
        s,
        "
options:
  --size SIZE     memory the workload works on (see above); suffixes K, M, G (binary)
  --vram SIZE     device memory per GPU, {}..{} [per workload]
  --devices N     number of GPUs, 1..{MAX_DEVICES} [1]
  --threads N     simulated threads running each batch of work, 1..{MAX_THREADS} [1]
  --seed N        seed of every random choice and of the thread interleavings [1]
  --steps N       workload steps: passes, rounds or iterations, 1..{MAX_STEPS} [per workload]
  --json          print the report as JSON on stdout (implies --no-progress)
  --svg FILE      write a residency map (address x time, colored by RAM/VRAM) to FILE
  --no-progress   never draw the progress bar (drawn on stderr only when it is a terminal)
  -h, --help      this help
",
        size_arg(MIN_VRAM),
        size_arg(MAX_VRAM)
    );
    s
}

/// The value of option `name`: `--name=value` or the next argument.
fn value<'a>(
    name: &str,
    inline: Option<&'a str>,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<&'a str, String> {
    match inline {
        Some(v) => Ok(v),
        None => rest
            .next()
            .map(String::as_str)
            .ok_or_else(|| format!("{name} needs a value")),
    }
}

fn size_value(name: &str, v: &str) -> Result<u64, String> {
    parse_size(v).ok_or_else(|| format!("{name}: '{v}' is not a size (use e.g. 64K, 2M, 1G)"))
}

fn number_value(name: &str, v: &str) -> Result<u64, String> {
    parse_number(v).ok_or_else(|| format!("{name}: '{v}' is not a number"))
}

fn in_range(name: &str, v: u64, lo: u64, hi: u64) -> Result<u64, String> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} must be between {lo} and {hi}, not {v}"))
    }
}

/// Parses the arguments after `workload`.
///
/// # Errors
///
/// A message naming the bad argument.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut name: Option<&str> = None;
    let (mut size, mut vram, mut steps) = (None, None, None);
    let (mut devices, mut threads, mut seed) = (1u32, 1u32, 1u64);
    let (mut json, mut no_progress, mut svg) = (false, false, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v)),
            _ => (arg.as_str(), None),
        };
        let flag = |set: &mut bool| -> Result<(), String> {
            match inline {
                Some(_) => Err(format!("{opt} takes no value")),
                None => {
                    *set = true;
                    Ok(())
                }
            }
        };
        match opt {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "--json" => flag(&mut json)?,
            "--no-progress" => flag(&mut no_progress)?,
            "--size" => size = Some(size_value(opt, value(opt, inline, &mut it)?)?),
            "--vram" => vram = Some(size_value(opt, value(opt, inline, &mut it)?)?),
            "--steps" => {
                let v = number_value(opt, value(opt, inline, &mut it)?)?;
                steps = Some(in_range(opt, v, 1, MAX_STEPS)?);
            }
            "--devices" => {
                let v = number_value(opt, value(opt, inline, &mut it)?)?;
                devices = in_range(opt, v, 1, MAX_DEVICES.into())? as u32;
            }
            "--threads" => {
                let v = number_value(opt, value(opt, inline, &mut it)?)?;
                threads = in_range(opt, v, 1, MAX_THREADS.into())? as u32;
            }
            "--seed" => seed = number_value(opt, value(opt, inline, &mut it)?)?,
            "--svg" => {
                let v = value(opt, inline, &mut it)?;
                if v.is_empty() || v.starts_with("--") {
                    return Err("--svg needs a file name".into());
                }
                svg = Some(v.to_string());
            }
            o if o.starts_with('-') && o.len() > 1 => return Err(format!("unknown option '{o}'")),
            positional => match name {
                None => name = Some(positional),
                Some(n) => {
                    return Err(format!(
                        "unexpected argument '{positional}' (the workload is already '{n}')"
                    ))
                }
            },
        }
    }
    let name = name.ok_or("no workload given")?;
    let workload = super::find(name).ok_or_else(|| {
        let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        format!(
            "unknown workload '{name}' (workloads: {})",
            names.join(", ")
        )
    })?;
    let size = match (size, vram, workload.size_per_vram) {
        (Some(size), _, _) => size,
        (None, Some(vram), Some((n, d))) => vram.saturating_mul(n) / d.max(1),
        (None, _, _) => workload.default_size,
    };
    if size > MAX_SIZE {
        return Err(format!(
            "--size {} is too large: at most {} (the simulator backs every byte with host memory)",
            size_arg(size),
            size_arg(MAX_SIZE)
        ));
    }
    let size = size.div_ceil(PAGE) * PAGE;
    if size < workload.min_size {
        return Err(format!(
            "--size for {} must be at least {}",
            workload.name,
            size_arg(workload.min_size)
        ));
    }
    let vram = vram.unwrap_or(workload.default_vram);
    if !(MIN_VRAM..=MAX_VRAM).contains(&vram) || vram % PAGE != 0 {
        return Err(format!(
            "--vram must be a multiple of 4K between {} and {}, not {vram}",
            size_arg(MIN_VRAM),
            size_arg(MAX_VRAM)
        ));
    }
    let params = Params {
        size,
        vram,
        devices,
        threads,
        seed,
        steps: steps.unwrap_or(workload.default_steps),
    };
    (workload.validate)(&params).map_err(|e| format!("{}: {e}", workload.name))?;
    if json {
        no_progress = true;
    }
    Ok(Command::Run(Invocation {
        workload,
        params,
        json,
        svg,
        no_progress,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn sizes_and_numbers() {
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("2m"), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("12"), Some(12));
        for bad in [
            "",
            "K",
            "-1",
            "1.5M",
            "1T",
            "99999999999999999999",
            "20000000000G",
            "+5",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("0x"), None);
    }

    #[test]
    fn defaults_and_overrides() {
        let Ok(Command::Run(i)) = parse(&args("stream")) else {
            panic!("stream parses");
        };
        assert_eq!(i.params, i.workload.default_params());
        let Ok(Command::Run(i)) = parse(&args(
            "--seed=9 random --size 1M --vram 4M --devices 2 --threads 3 --steps 5 --json --svg x.svg",
        )) else {
            panic!("options parse");
        };
        assert_eq!(i.workload.name, "random");
        assert_eq!(
            (i.params.size, i.params.vram, i.params.devices),
            (1 << 20, 4 << 20, 2)
        );
        assert_eq!((i.params.threads, i.params.steps, i.params.seed), (3, 5, 9));
        assert!(i.json && i.no_progress);
        assert_eq!(i.svg.as_deref(), Some("x.svg"));
        // oversubscribe's data follows --vram unless --size is given.
        let Ok(Command::Run(i)) = parse(&args("oversubscribe --vram 8M")) else {
            panic!("oversubscribe parses");
        };
        assert_eq!(i.params.size, 20 << 20);
        // Sizes round up to pages.
        let Ok(Command::Run(i)) = parse(&args("stream --size 100000")) else {
            panic!("stream parses");
        };
        assert_eq!(i.params.size, 102_400);
    }

    #[test]
    fn bad_arguments_are_errors() {
        for bad in [
            "",
            "nosuch",
            "stream extra",
            "stream --size",
            "stream --size 12Q",
            "stream --vram 1000",
            "stream --vram 1K",
            "stream --devices 0",
            "stream --devices 9",
            "stream --threads 65",
            "stream --steps 0",
            "stream --seed -1",
            "stream --frobnicate",
            "stream --json=yes",
            "stream --size 8G",
            "stream --size 4K",
            "stream --svg=",
            "stream --svg --json",
            "oversubscribe --size 8M --vram 16M",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} must be rejected");
        }
        assert!(matches!(parse(&args("stream --help")), Ok(Command::Help)));
    }

    #[test]
    fn help_lists_every_workload_with_defaults() {
        let h = help();
        for w in &WORKLOADS {
            assert!(h.contains(w.name));
            assert!(h.contains(&format!("--size {}", size_arg(w.default_size))));
        }
        assert!(h.contains("--no-progress"));
        assert!(h.lines().all(|l| l.chars().count() <= HELP_WIDTH), "{h}");
    }
}
