//! A one-line progress bar on stderr for long workload runs.
//!
//! The caller decides whether it may be drawn at all (stderr is a terminal, no `--no-progress`,
//! no `--json`); the bar then still stays invisible for short runs: it first appears after
//! [`SHOW_AFTER`], is redrawn at most every [`REDRAW_EVERY`], and is erased (not left behind)
//! when the run ends, so the report that follows starts on a clean line.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Runs shorter than this never show a bar.
pub const SHOW_AFTER: Duration = Duration::from_millis(300);
/// Minimum time between redraws.
pub const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Width of the bar in characters.
const WIDTH: usize = 30;

/// The progress bar of one run.
pub struct Progress {
    enabled: bool,
    label: String,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A bar labelled `label`, drawn only if `enabled`.
    pub fn new(label: &str, enabled: bool) -> Self {
        Progress {
            enabled,
            label: label.to_string(),
            started: Instant::now(),
            last_draw: None,
        }
    }

    /// The bar's text for `done` of `total` steps after `elapsed`.
    pub fn line(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
        let total = total.max(1);
        let done = done.min(total);
        let filled = (done as usize * WIDTH) / total as usize;
        format!(
            "{label} [{}{}] {:3}%  step {done}/{total}  {:.1} s",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            done * 100 / total,
            elapsed.as_secs_f64()
        )
    }

    /// Reports that `done` of `total` steps are finished.
    pub fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.started);
        if elapsed < SHOW_AFTER
            || self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < REDRAW_EVERY)
        {
            return;
        }
        self.last_draw = Some(now);
        let line = Self::line(&self.label, done, total, elapsed);
        let mut err = std::io::stderr().lock();
        // A progress bar that cannot be drawn is not worth failing the run for.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Erases the bar if it was drawn.
    pub fn clear(&mut self) {
        if self.last_draw.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_fraction_done() {
        let l = Progress::line("stream", 3, 4, Duration::from_millis(1500));
        assert!(l.starts_with("stream [######################........]  75%"));
        assert!(l.ends_with("step 3/4  1.5 s"));
        // Degenerate totals do not divide by zero or overflow the bar.
        assert!(Progress::line("x", 9, 0, Duration::ZERO).contains("100%"));
    }

    #[test]
    fn a_disabled_bar_never_draws() {
        let mut p = Progress::new("x", false);
        if let Some(earlier) = p.started.checked_sub(Duration::from_secs(10)) {
            p.started = earlier;
        }
        p.update(1, 2);
        assert!(p.last_draw.is_none());
    }
}
