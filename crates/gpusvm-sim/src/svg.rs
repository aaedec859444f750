//! Residency maps: where a workload's pages lived over time, rendered as an SVG picture.
//!
//! A [`ResidencyMap`] is a grid. The y axis is address: the workload declares its buffers as
//! *tracks* (a label and a page count), stacked top to bottom, and each row of the grid covers a
//! fixed number of consecutive pages of one track. The x axis is time: each column is one sample,
//! taken by the caller after a batch of work, and step boundaries are marked under the plot.
//! Each cell is colored by where the pages it covers are (see [`PageResidency`]): not mapped,
//! mapped but not populated, RAM, or VRAM of a given device.
//!
//! # Bounded size
//!
//! The picture stays readable and small whatever the workload's size or length:
//!
//! - **Rows.** With more than [`MAX_ROWS`] pages in total, a row covers `ceil(pages / MAX_ROWS)`
//!   pages and shows the class most of them have (ties go to the class listed last in
//!   [`PageResidency`]'s order: VRAM over RAM over unpopulated over unmapped). Each track gets at
//!   least one row, so a tiny buffer next to a huge one stays visible.
//! - **Columns.** At most [`MAX_STORED_COLUMNS`] samples are kept: when that many are stored,
//!   every other one is dropped and from then on only every second sample is recorded (the
//!   stride doubles again as needed), so memory stays bounded on arbitrarily long runs. When
//!   rendering, stored columns are merged into at most [`MAX_COLUMNS`] output columns by the same
//!   majority rule.
//! - **Output.** Runs of equal cells in a row are drawn as one rectangle, merged with identical
//!   runs in the rows below (a 2 MiB range spans several rows and moves as one), and rectangles
//!   are grouped by color, so a typical map is tens of kilobytes; the worst case is bounded by
//!   `MAX_COLUMNS × rows` rectangles.
//!
//! Rendering is pure ([`ResidencyMap::render`] returns the document as a string); the caller
//! samples the world and writes the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::world::PageResidency;

/// The most rows a map has (plus at most one per track, from rounding).
pub const MAX_ROWS: u64 = 300;
/// The most columns a rendered map has.
pub const MAX_COLUMNS: usize = 400;
/// The most samples kept in memory before decimation.
pub const MAX_STORED_COLUMNS: usize = 4096;

/// Cell classes as stored: a compact code per [`PageResidency`].
const UNMAPPED: u8 = 0;
const UNPOPULATED: u8 = 1;
const RAM: u8 = 2;
/// Device `d` is `VRAM0 + d`.
const VRAM0: u8 = 3;
/// The most devices a map distinguishes (the simulator's limit).
const MAX_DEVICES: u32 = 8;

/// Colors by class code: not mapped, not populated, RAM, then VRAM of devices 0 to 7.
const COLORS: [&str; 11] = [
    "#ffffff", "#d9d9d9", "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#edc948",
    "#76b7b2", "#ff9da7", "#9c755f",
];

// Layout, in pixels.
const LEFT: f64 = 190.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 70.0;
const PLOT_W: f64 = 800.0;
const PLOT_H: f64 = 480.0;
const AXIS_H: f64 = 44.0;
const LEGEND_H: f64 = 40.0;

fn code_of(r: PageResidency) -> u8 {
    match r {
        PageResidency::Unmapped => UNMAPPED,
        PageResidency::Unpopulated => UNPOPULATED,
        PageResidency::Ram => RAM,
        // Device ids are below MAX_DEVICES (validated by the configuration); clamp anyway.
        PageResidency::Vram(d) => VRAM0 + d.min(MAX_DEVICES - 1) as u8,
    }
}

/// The most common code of `codes` (ties: the highest code); `UNMAPPED` when empty.
fn majority(codes: impl IntoIterator<Item = u8>) -> u8 {
    let mut counts = [0u64; COLORS.len()];
    for c in codes {
        if let Some(n) = counts.get_mut(usize::from(c)) {
            *n += 1;
        }
    }
    let mut best = (0u64, UNMAPPED);
    for (code, &n) in counts.iter().enumerate() {
        if n > 0 && n >= best.0 {
            best = (n, code as u8);
        }
    }
    best.1
}

/// Escapes text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A rectangle of equal cells.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Block {
    code: u8,
    cols: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
}

/// One track's place in the grid.
#[derive(Clone, Debug)]
struct TrackRows {
    label: String,
    pages: u64,
    first_row: usize,
    rows: usize,
}

/// A residency-over-time grid; see the module documentation.
#[derive(Clone, Debug)]
pub struct ResidencyMap {
    tracks: Vec<TrackRows>,
    pages_per_row: u64,
    rows: usize,
    devices: u32,
    /// Stored columns: one code per row.
    columns: Vec<Vec<u8>>,
    /// The sample number (0-based, counting every push) of each stored column.
    sample_of: Vec<u64>,
    /// Samples pushed so far.
    samples: u64,
    /// Only every `stride`-th sample is stored.
    stride: u64,
    /// (sample count at the boundary, step number) for each step that ended.
    steps: Vec<(u64, u64)>,
}

impl ResidencyMap {
    /// An empty map over `tracks` (label, page count), for a world with `devices` GPUs.
    pub fn new(tracks: &[(String, u64)], devices: u32) -> Self {
        let total: u64 = tracks.iter().map(|t| t.1).sum();
        let pages_per_row = total.div_ceil(MAX_ROWS).max(1);
        let mut rows = 0usize;
        let tracks = tracks
            .iter()
            .map(|(label, pages)| {
                let t = TrackRows {
                    label: label.clone(),
                    pages: *pages,
                    first_row: rows,
                    rows: pages.div_ceil(pages_per_row).max(1) as usize,
                };
                rows += t.rows;
                t
            })
            .collect();
        ResidencyMap {
            tracks,
            pages_per_row,
            rows,
            devices: devices.clamp(1, MAX_DEVICES),
            columns: Vec::new(),
            sample_of: Vec::new(),
            samples: 0,
            stride: 1,
            steps: Vec::new(),
        }
    }

    /// Rows of the grid.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Pages each row covers.
    pub fn pages_per_row(&self) -> u64 {
        self.pages_per_row
    }

    /// Columns currently stored (at most [`MAX_STORED_COLUMNS`]).
    pub fn stored_columns(&self) -> usize {
        self.columns.len()
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Adds a sample: `tracks[i]` is the residency of track `i`'s pages (missing pages count as
    /// unmapped, extra ones are ignored; missing tracks are unmapped).
    pub fn push(&mut self, tracks: &[Vec<PageResidency>]) {
        let n = self.samples;
        self.samples += 1;
        if !n.is_multiple_of(self.stride) {
            return;
        }
        let mut column = vec![UNMAPPED; self.rows];
        for (i, t) in self.tracks.iter().enumerate() {
            let pages = tracks.get(i).map_or(&[][..], Vec::as_slice);
            for r in 0..t.rows {
                let a = r as u64 * self.pages_per_row;
                let b = (a + self.pages_per_row).min(t.pages);
                let cell = majority(
                    (a..b).map(|p| pages.get(p as usize).copied().map_or(UNMAPPED, code_of)),
                );
                if let Some(slot) = column.get_mut(t.first_row + r) {
                    *slot = cell;
                }
            }
        }
        self.columns.push(column);
        self.sample_of.push(n);
        if self.columns.len() >= MAX_STORED_COLUMNS {
            self.decimate();
        }
    }

    /// Drops every other stored column (keeping the later of each pair) and doubles the stride.
    fn decimate(&mut self) {
        let keep = |i: usize| i % 2 == 1;
        let mut i = 0;
        self.columns.retain(|_| {
            i += 1;
            keep(i - 1)
        });
        let mut j = 0;
        self.sample_of.retain(|_| {
            j += 1;
            keep(j - 1)
        });
        self.stride *= 2;
    }

    /// Records that workload step `step` ended after the last sample.
    pub fn mark_step(&mut self, step: u64) {
        self.steps.push((self.samples, step));
    }

    /// The rendered grid: output columns, each a code per row, and for each output column the
    /// range of stored columns it merges.
    fn output_columns(&self) -> Vec<(Vec<u8>, std::ops::Range<usize>)> {
        let n = self.columns.len();
        let out = n.min(MAX_COLUMNS);
        (0..out)
            .map(|c| {
                let (a, b) = (c * n / out, ((c + 1) * n / out).max(c * n / out + 1));
                let cells = (0..self.rows)
                    .map(|r| {
                        majority(
                            self.columns[a..b.min(n)]
                                .iter()
                                .map(|col| col.get(r).copied().unwrap_or(UNMAPPED)),
                        )
                    })
                    .collect();
                (cells, a..b.min(n))
            })
            .collect()
    }

    /// The grid as rectangles of equal cells: runs of equal cells in a row, merged with the
    /// identical runs of the rows below. Unmapped cells are left out (they are the background).
    /// Deterministic: blocks come out in the order they close.
    fn blocks(cols: &[(Vec<u8>, std::ops::Range<usize>)], rows: usize) -> Vec<Block> {
        let mut done = Vec::new();
        // Runs still growing downwards: (first column, end column, code) → first row.
        let mut open: BTreeMap<(usize, usize, u8), usize> = BTreeMap::new();
        for r in 0..=rows {
            let mut runs = BTreeMap::new();
            let mut c = 0;
            while r < rows && c < cols.len() {
                let code = cols[c].0.get(r).copied().unwrap_or(UNMAPPED);
                let mut end = c + 1;
                while end < cols.len() && cols[end].0.get(r).copied() == Some(code) {
                    end += 1;
                }
                if code != UNMAPPED {
                    runs.insert((c, end, code), ());
                }
                c = end;
            }
            let closed: Vec<(usize, usize, u8)> = open
                .keys()
                .filter(|k| !runs.contains_key(k))
                .copied()
                .collect();
            for k in closed {
                if let Some(first) = open.remove(&k) {
                    done.push(Block {
                        code: k.2,
                        cols: k.0..k.1,
                        rows: first..r,
                    });
                }
            }
            for k in runs.into_keys() {
                open.entry(k).or_insert(r);
            }
        }
        done
    }

    /// The SVG document: `title` on top, `subtitle` (parameters) under it, the grid with track
    /// labels, step ticks and a legend.
    pub fn render(&self, title: &str, subtitle: &str) -> String {
        let cols = self.output_columns();
        let ncols = cols.len().max(1);
        let cell_w = PLOT_W / ncols as f64;
        let cell_h = PLOT_H / self.rows.max(1) as f64;
        let width = LEFT + PLOT_W + RIGHT;
        let height = TOP + PLOT_H + AXIS_H + LEGEND_H;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">"
        );
        let _ = writeln!(s, "<title>{}</title>", xml_escape(title));
        let _ = writeln!(
            s,
            "<rect x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"#ffffff\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"28\" font-size=\"18\" font-weight=\"bold\" fill=\"#222\">{}</text>",
            LEFT,
            xml_escape(title)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"50\" font-size=\"12\" fill=\"#555\">{}</text>",
            LEFT,
            xml_escape(subtitle)
        );

        // Cells: rectangles grouped by color (unmapped cells are the plot's background).
        let mut groups: Vec<String> = vec![String::new(); COLORS.len()];
        for b in Self::blocks(&cols, self.rows) {
            if let Some(g) = groups.get_mut(usize::from(b.code)) {
                let _ = writeln!(
                    g,
                    "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\"/>",
                    LEFT + b.cols.start as f64 * cell_w,
                    TOP + b.rows.start as f64 * cell_h,
                    b.cols.len() as f64 * cell_w,
                    b.rows.len() as f64 * cell_h
                );
            }
        }
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT:.0}\" y=\"{TOP:.0}\" width=\"{PLOT_W:.0}\" height=\"{PLOT_H:.0}\" fill=\"{}\"/>",
            COLORS[usize::from(UNMAPPED)]
        );
        let _ = writeln!(s, "<g shape-rendering=\"crispEdges\">");
        for (code, g) in groups.iter().enumerate() {
            if !g.is_empty() {
                let _ = write!(s, "<g fill=\"{}\">\n{g}</g>\n", COLORS[code]);
            }
        }
        let _ = writeln!(s, "</g>");

        self.render_tracks(&mut s, cell_h);
        self.render_time_axis(&mut s, &cols, cell_w);
        self.render_legend(&mut s);
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT:.0}\" y=\"{TOP:.0}\" width=\"{PLOT_W:.0}\" height=\"{PLOT_H:.0}\" \
fill=\"none\" stroke=\"#444\" stroke-width=\"1\"/>"
        );
        s.push_str("</svg>\n");
        s
    }

    /// Track separators and labels (name, size and page indices) left of the plot.
    fn render_tracks(&self, s: &mut String, cell_h: f64) {
        let _ = writeln!(
            s,
            "<text x=\"16\" y=\"{:.1}\" font-size=\"12\" fill=\"#555\" text-anchor=\"middle\" \
transform=\"rotate(-90 16 {:.1})\">address (page index over the buffers) →</text>",
            TOP + PLOT_H / 2.0,
            TOP + PLOT_H / 2.0
        );
        let mut first_page = 0u64;
        for (i, t) in self.tracks.iter().enumerate() {
            let y0 = TOP + t.first_row as f64 * cell_h;
            let h = t.rows as f64 * cell_h;
            if i > 0 {
                let _ = writeln!(
                    s,
                    "<line x1=\"{:.0}\" y1=\"{y0:.2}\" x2=\"{:.0}\" y2=\"{y0:.2}\" stroke=\"#222\" stroke-width=\"1\"/>",
                    LEFT - 6.0,
                    LEFT + PLOT_W
                );
            }
            // Labels only where they fit; thin tracks still get their separator.
            if h >= 11.0 {
                let two_lines = h >= 30.0;
                let mid = y0 + h / 2.0 + if two_lines { -2.0 } else { 4.0 };
                let _ = writeln!(
                    s,
                    "<text x=\"{:.0}\" y=\"{mid:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#222\">{}</text>",
                    LEFT - 10.0,
                    xml_escape(&t.label)
                );
                if two_lines {
                    let last = (first_page + t.pages).saturating_sub(1);
                    let _ = writeln!(
                        s,
                        "<text x=\"{:.0}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#666\">{} · pages {first_page}–{last}</text>",
                        LEFT - 10.0,
                        mid + 13.0,
                        crate::report::fmt_bytes(t.pages * crate::mem::PAGE)
                    );
                }
            }
            first_page += t.pages;
        }
    }

    /// Step ticks and labels under the plot, and the axis title.
    fn render_time_axis(
        &self,
        s: &mut String,
        cols: &[(Vec<u8>, std::ops::Range<usize>)],
        cell_w: f64,
    ) {
        let base = TOP + PLOT_H;
        // x position of a boundary after `samples` samples: the left edge of the first output
        // column holding a later sample.
        let x_of = |samples: u64| -> f64 {
            let stored = self.sample_of.partition_point(|&n| n < samples);
            let col = cols.partition_point(|(_, r)| r.end <= stored);
            LEFT + col as f64 * cell_w
        };
        let every = (self.steps.len() as u64).div_ceil(12).max(1);
        for (k, &(samples, step)) in self.steps.iter().enumerate() {
            let x = x_of(samples);
            let labelled = (k as u64 + 1).is_multiple_of(every) || k + 1 == self.steps.len();
            let len = if labelled { 6.0 } else { 3.0 };
            let _ = writeln!(
                s,
                "<line x1=\"{x:.2}\" y1=\"{base:.0}\" x2=\"{x:.2}\" y2=\"{:.0}\" stroke=\"#444\" stroke-width=\"1\"/>",
                base + len
            );
            if labelled {
                let _ = writeln!(
                    s,
                    "<text x=\"{x:.1}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">{step}</text>",
                    base + 17.0
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#555\">time → (one column per batch of work; ticks: end of workload step N)</text>",
            LEFT + PLOT_W / 2.0,
            base + 36.0
        );
    }

    /// Color keys under the axis, with the grid's resolution.
    fn render_legend(&self, s: &mut String) {
        let y = TOP + PLOT_H + AXIS_H + 12.0;
        let mut entries: Vec<(u8, String)> = vec![
            (UNMAPPED, "not mapped".into()),
            (UNPOPULATED, "not populated".into()),
            (RAM, "RAM".into()),
        ];
        for d in 0..self.devices {
            entries.push((VRAM0 + d as u8, format!("VRAM GPU {d}")));
        }
        let _ = writeln!(s, "<g class=\"legend\" font-size=\"12\" fill=\"#222\">");
        let mut x = LEFT;
        for (code, label) in entries {
            let _ = writeln!(
                s,
                "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"14\" height=\"14\" fill=\"{}\" stroke=\"#444\" stroke-width=\"0.5\"/>\
<text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
                COLORS[usize::from(code)],
                x + 19.0,
                y + 12.0,
                xml_escape(&label)
            );
            x += 28.0 + 7.0 * label.len() as f64;
        }
        let merged = (self.columns.len() as u64 * self.stride).div_ceil(MAX_COLUMNS as u64);
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\">cell = {} page{} × {} sample{} (majority)</text>",
            LEFT + PLOT_W,
            y + 12.0,
            self.pages_per_row,
            if self.pages_per_row == 1 { "" } else { "s" },
            merged.max(1),
            if merged > 1 { "s" } else { "" }
        );
        let _ = writeln!(s, "</g>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PageResidency::{Ram, Unmapped, Unpopulated, Vram};

    #[test]
    fn rows_cover_every_track_and_stay_bounded() {
        let m = ResidencyMap::new(&[("big".into(), 100_000), ("tiny".into(), 1)], 2);
        assert_eq!(m.pages_per_row(), 100_001u64.div_ceil(MAX_ROWS));
        assert!(m.rows() <= MAX_ROWS as usize + 2);
        assert_eq!(m.tracks[1].rows, 1, "a one-page track keeps a row");
        let small = ResidencyMap::new(&[("a".into(), 16)], 1);
        assert_eq!((small.rows(), small.pages_per_row()), (16, 1));
    }

    #[test]
    fn cells_take_the_majority_class() {
        let mut m = ResidencyMap::new(&[("a".into(), 4 * MAX_ROWS)], 2);
        assert_eq!(m.pages_per_row(), 4);
        let mut pages = vec![Unpopulated; 4 * MAX_ROWS as usize];
        pages[..3].copy_from_slice(&[Vram(1), Vram(1), Ram]);
        pages[4..8].copy_from_slice(&[Ram, Ram, Vram(0), Vram(0)]);
        m.push(&[pages]);
        assert_eq!(m.columns[0][0], VRAM0 + 1);
        assert_eq!(m.columns[0][1], VRAM0, "ties go to VRAM");
        assert_eq!(m.columns[0][2], UNPOPULATED);
        m.push(&[]);
        assert!(m.columns[1].iter().all(|&c| c == UNMAPPED));
    }

    #[test]
    fn equal_cells_merge_into_blocks() {
        // Two columns, three rows: rows 0-1 RAM then VRAM, row 2 unmapped then RAM.
        let cols = vec![
            (vec![RAM, RAM, UNMAPPED], 0..1),
            (vec![VRAM0, VRAM0, RAM], 1..2),
        ];
        let mut b = ResidencyMap::blocks(&cols, 3);
        b.sort_by_key(|b| (b.cols.start, b.rows.start));
        assert_eq!(
            b,
            vec![
                Block {
                    code: RAM,
                    cols: 0..1,
                    rows: 0..2
                },
                Block {
                    code: VRAM0,
                    cols: 1..2,
                    rows: 0..2
                },
                Block {
                    code: RAM,
                    cols: 1..2,
                    rows: 2..3
                },
            ]
        );
    }

    #[test]
    fn long_runs_are_decimated_and_rendered_within_bounds() {
        let mut m = ResidencyMap::new(&[("a".into(), 8)], 1);
        for i in 0..10_000u64 {
            let r = if i % 2 == 0 { Ram } else { Vram(0) };
            m.push(&[vec![r; 8]]);
            if i % 100 == 99 {
                m.mark_step(i / 100 + 1);
            }
        }
        assert_eq!(m.samples(), 10_000);
        assert!(m.stored_columns() < MAX_STORED_COLUMNS);
        assert!(m.sample_of.windows(2).all(|w| w[0] < w[1]));
        let svg = m.render("t", "s");
        let rects = svg.matches("<rect").count();
        assert!(rects <= MAX_COLUMNS * 8 + 20, "{rects} rectangles");
    }

    #[test]
    fn the_document_is_well_formed_with_a_legend_and_escaped_labels() {
        let mut m = ResidencyMap::new(&[("A & <B>".into(), 64), ("C".into(), 64)], 2);
        m.push(&[vec![Unpopulated; 64], vec![Unmapped; 64]]);
        m.push(&[vec![Ram; 64], vec![Vram(1); 64]]);
        m.mark_step(1);
        let svg = m.render("title \"x\"", "sub");
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("A &amp; &lt;B&gt;"));
        assert!(svg.contains("title &quot;x&quot;"));
        for key in [
            "not mapped",
            "not populated",
            "RAM",
            "VRAM GPU 0",
            "VRAM GPU 1",
        ] {
            assert!(
                svg.contains(&format!(">{key}</text>")),
                "legend lacks {key}"
            );
        }
        assert!(svg.contains(COLORS[usize::from(VRAM0 + 1)]));
        // Tags balance: every opened <g> is closed.
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    }
}
