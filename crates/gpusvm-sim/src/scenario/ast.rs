//! The typed syntax tree of a scenario file.
//!
//! Every value here is already validated syntactically: numbers are in range, names are
//! well-formed identifiers, keywords are known. Whether a statement makes *sense* (a region
//! exists, a device index is valid, a size is page-aligned) is for the simulator to decide when
//! it runs the scenario, because those are exactly the cases scenarios test with `-> EINVAL` and
//! friends.
//!
//! Every type implements [`Display`](fmt::Display) in source form, so a parsed [`Scenario`] can
//! be printed back and re-parsed to the same tree (line and column numbers aside), and error
//! reports can quote the statement that failed.

use std::fmt;

/// A parsed scenario: the merged set-up keys followed by the statements in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenario {
    /// The simulator set-up, merged from every `config` line (later keys win).
    pub config: Config,
    /// The statements, in file order. `concurrent` blocks hold their own statements.
    pub stmts: Vec<Stmt>,
}

impl fmt::Display for Scenario {
    /// Prints the scenario in source form: one `config` line (if any key is set), then one
    /// statement per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.config.is_empty() {
            writeln!(f, "{}", self.config)?;
        }
        for stmt in &self.stmts {
            writeln!(f, "{stmt}")?;
        }
        Ok(())
    }
}

/// The simulator set-up given by `config` lines; `None` means "not given, use the default".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `page=SIZE`: the CPU page size.
    pub page: Option<u64>,
    /// `chunks=SIZE,SIZE,...`: the SVM range chunk sizes to try, in the given order.
    pub chunks: Option<Vec<u64>>,
    /// `notifier=SIZE`: the size of one MMU interval notifier.
    pub notifier: Option<u64>,
    /// `vram=SIZE`: device memory per GPU.
    pub vram: Option<u64>,
    /// `devices=N`: the number of GPUs.
    pub devices: Option<u32>,
    /// `check_pages_threshold=SIZE`: the range size up to which pages are checked before a
    /// fault is served.
    pub check_pages_threshold: Option<u64>,
    /// `migrate_min=SIZE`: the smallest range migrated to device memory.
    pub migrate_min: Option<u64>,
    /// `atomic_timeslice_ms=N`: how long device atomics keep a range in device memory.
    pub atomic_timeslice_ms: Option<u64>,
    /// `seed=N`: the simulator's global random seed.
    pub seed: Option<u64>,
    /// `range_split=on|off`: split partially unmapped ranges (`on`) or destroy them whole
    /// (`off`, upstream's behaviour).
    pub range_split: Option<bool>,
    /// `owners=shared|separate`: whether the GPUs share one device-private owner.
    pub owners: Option<Owners>,
}

impl Config {
    /// Every key a `config` line accepts, in the order [`Config`]'s `Display` prints them.
    pub const KEYS: &'static [&'static str] = &[
        "page",
        "chunks",
        "notifier",
        "vram",
        "devices",
        "check_pages_threshold",
        "migrate_min",
        "atomic_timeslice_ms",
        "seed",
        "range_split",
        "owners",
    ];

    /// Returns `true` when no key is set.
    pub fn is_empty(&self) -> bool {
        *self == Config::default()
    }
}

impl fmt::Display for Config {
    /// Prints a single `config` line holding every key that is set (nothing if none is).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        f.write_str("config")?;
        if let Some(v) = self.page {
            write!(f, " page={}", Size(v))?;
        }
        if let Some(chunks) = &self.chunks {
            f.write_str(" chunks=")?;
            for (i, c) in chunks.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                write!(f, "{sep}{}", Size(*c))?;
            }
        }
        if let Some(v) = self.notifier {
            write!(f, " notifier={}", Size(v))?;
        }
        if let Some(v) = self.vram {
            write!(f, " vram={}", Size(v))?;
        }
        if let Some(v) = self.devices {
            write!(f, " devices={v}")?;
        }
        if let Some(v) = self.check_pages_threshold {
            write!(f, " check_pages_threshold={}", Size(v))?;
        }
        if let Some(v) = self.migrate_min {
            write!(f, " migrate_min={}", Size(v))?;
        }
        if let Some(v) = self.atomic_timeslice_ms {
            write!(f, " atomic_timeslice_ms={v}")?;
        }
        if let Some(v) = self.seed {
            write!(f, " seed={v}")?;
        }
        if let Some(v) = self.range_split {
            write!(f, " range_split={}", if v { "on" } else { "off" })?;
        }
        if let Some(v) = self.owners {
            write!(f, " owners={v}")?;
        }
        Ok(())
    }
}

/// One statement with its source position and the outcomes it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// The 1-based line the statement is on.
    pub line: u32,
    /// The 1-based column (in characters) of the statement's first word.
    pub col: u32,
    /// What the statement does.
    pub kind: StmtKind,
    /// The outcomes the statement may have (`-> ...`; `ok` when not given).
    pub outcome: Outcome,
}

impl fmt::Display for Stmt {
    /// Prints the statement in source form, with its `-> ...` outcome unless it is the default.
    /// A `concurrent` block spans several lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.outcome.is_default() {
            write!(f, " -> {}", self.outcome)?;
        }
        Ok(())
    }
}

/// What a statement does: one variant per verb of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    /// `process NAME`: switch to (and create on first use) the process `name`.
    Process {
        /// The process name.
        name: String,
    },
    /// `fork CHILD`: fork the current process into a new process `child`.
    Fork {
        /// The child process name.
        child: String,
    },
    /// `exit`: end the current process and tear down its mm.
    Exit,
    /// `mmap NAME size=SIZE [align=SIZE] [at=ADDR] [prot=...] [kind=...]`.
    Mmap {
        /// The region name later statements use.
        name: String,
        /// The mapping length in bytes.
        size: u64,
        /// The required alignment of the start address.
        align: Option<u64>,
        /// A fixed start address (`MAP_FIXED`).
        at: Option<Address>,
        /// The initial protection.
        prot: Prot,
        /// The kind of memory backing the region.
        kind: MapKind,
    },
    /// `munmap SPAN`.
    Munmap {
        /// The span to unmap.
        span: Span,
    },
    /// `mremap NAME new=NAME2 [size=SIZE] [dontunmap]`.
    Mremap {
        /// The region to move.
        name: String,
        /// The name the moved region gets; `name` keeps naming the old address.
        new_name: String,
        /// The new length (the old length when `None`).
        size: Option<u64>,
        /// `MREMAP_DONTUNMAP`: keep the old mapping in place.
        dontunmap: bool,
    },
    /// `mprotect SPAN prot=...`.
    Mprotect {
        /// The span to change.
        span: Span,
        /// The new protection.
        prot: Prot,
    },
    /// `madvise SPAN dontneed`.
    MadviseDontneed {
        /// The span whose pages are dropped.
        span: Span,
    },
    /// `cpu write SPAN fill=...`.
    CpuWrite {
        /// The bytes written.
        span: Span,
        /// What is written.
        fill: Fill,
    },
    /// `cpu read SPAN [expect=...]`.
    CpuRead {
        /// The bytes read.
        span: Span,
        /// The contents the read must find, if given.
        expect: Option<Pattern>,
    },
    /// `gpu write SPAN fill=... [dev=K]`.
    GpuWrite {
        /// The bytes written.
        span: Span,
        /// What is written.
        fill: Fill,
        /// The GPU doing the access (device 0 when `None`).
        dev: Option<u32>,
    },
    /// `gpu read SPAN [expect=...] [dev=K]`.
    GpuRead {
        /// The bytes read.
        span: Span,
        /// The contents the read must find, if given.
        expect: Option<Pattern>,
        /// The GPU doing the access (device 0 when `None`).
        dev: Option<u32>,
    },
    /// `gpu atomic ADDR [count=N] [dev=K]`: `count` atomic 64-bit increments at `addr`.
    GpuAtomic {
        /// The address of the 64-bit counter.
        addr: Address,
        /// The number of increments (1 when not given).
        count: u64,
        /// The GPU doing the access (device 0 when `None`).
        dev: Option<u32>,
    },
    /// `prefetch SPAN to=vram|ram [dev=K]`: migrate and create the GPU mappings.
    Prefetch {
        /// The span to prefetch.
        span: Span,
        /// Where the pages should end up.
        to: Placement,
        /// The GPU the prefetch is for (device 0 when `None`).
        dev: Option<u32>,
    },
    /// `advise SPAN [preferred=...] [atomic=...]`: set memory attributes.
    Advise {
        /// The span the attributes apply to.
        span: Span,
        /// The preferred placement, if given.
        preferred: Option<Preferred>,
        /// The atomic-access mode, if given.
        atomic: Option<AtomicMode>,
    },
    /// `evict [dev=K] [SPAN]`: device-memory pressure; evict to RAM.
    Evict {
        /// The GPU whose memory is evicted (every GPU when `None`).
        dev: Option<u32>,
        /// The span to evict (everything when `None`).
        span: Option<Span>,
    },
    /// `remove_device dev=K`: hot-unplug a GPU.
    RemoveDevice {
        /// The GPU removed.
        dev: u32,
    },
    /// `bind_bo SPAN [dev=K]`: a non-SVM GPU mapping over the span.
    BindBo {
        /// The span the buffer object is bound over.
        span: Span,
        /// The GPU whose VM gets the binding (device 0 when `None`).
        dev: Option<u32>,
    },
    /// `concurrent seed=N { ... }`: run each statement of `body` as its own simulated thread.
    Concurrent {
        /// Chooses the interleaving, reproducibly.
        seed: u64,
        /// The statements run concurrently, each with its own outcome.
        body: Vec<Stmt>,
    },
    /// `expect residency SPAN in=... [dev=K]`.
    ExpectResidency {
        /// The span checked.
        span: Span,
        /// Where its pages must be.
        loc: Residency,
        /// The GPU whose memory counts as `vram` (device 0 when `None`).
        dev: Option<u32>,
    },
    /// `expect ranges OP N`: the number of live SVM ranges of the current process.
    ExpectRanges {
        /// The comparison.
        op: CmpOp,
        /// The right-hand side.
        value: u64,
    },
    /// `expect stat NAME OP N`: compare a statistic (see [`STAT_NAMES`]).
    ExpectStat {
        /// The statistic, one of [`STAT_NAMES`].
        name: String,
        /// The comparison.
        op: CmpOp,
        /// The right-hand side.
        value: u64,
    },
    /// `expect chunk ADDR == SIZE`: the SVM range covering `addr` has this size.
    ExpectChunk {
        /// An address inside the range.
        addr: Address,
        /// The range size the expectation requires.
        size: u64,
    },
}

impl StmtKind {
    /// The statement's verb as written in the file, e.g. `"munmap"` or `"gpu write"`.
    pub fn verb(&self) -> &'static str {
        match self {
            StmtKind::Process { .. } => "process",
            StmtKind::Fork { .. } => "fork",
            StmtKind::Exit => "exit",
            StmtKind::Mmap { .. } => "mmap",
            StmtKind::Munmap { .. } => "munmap",
            StmtKind::Mremap { .. } => "mremap",
            StmtKind::Mprotect { .. } => "mprotect",
            StmtKind::MadviseDontneed { .. } => "madvise",
            StmtKind::CpuWrite { .. } => "cpu write",
            StmtKind::CpuRead { .. } => "cpu read",
            StmtKind::GpuWrite { .. } => "gpu write",
            StmtKind::GpuRead { .. } => "gpu read",
            StmtKind::GpuAtomic { .. } => "gpu atomic",
            StmtKind::Prefetch { .. } => "prefetch",
            StmtKind::Advise { .. } => "advise",
            StmtKind::Evict { .. } => "evict",
            StmtKind::RemoveDevice { .. } => "remove_device",
            StmtKind::BindBo { .. } => "bind_bo",
            StmtKind::Concurrent { .. } => "concurrent",
            StmtKind::ExpectResidency { .. } => "expect residency",
            StmtKind::ExpectRanges { .. } => "expect ranges",
            StmtKind::ExpectStat { .. } => "expect stat",
            StmtKind::ExpectChunk { .. } => "expect chunk",
        }
    }

    /// Returns `true` for the `expect ...` statements, which check state instead of acting and
    /// therefore take no `-> ...` outcome.
    pub fn is_expectation(&self) -> bool {
        matches!(
            self,
            StmtKind::ExpectResidency { .. }
                | StmtKind::ExpectRanges { .. }
                | StmtKind::ExpectStat { .. }
                | StmtKind::ExpectChunk { .. }
        )
    }
}

/// Writes ` dev=K` when a device is given.
fn write_dev(f: &mut fmt::Formatter<'_>, dev: Option<u32>) -> fmt::Result {
    match dev {
        Some(dev) => write!(f, " dev={dev}"),
        None => Ok(()),
    }
}

impl fmt::Display for StmtKind {
    /// Prints the statement (without its outcome) in source form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb();
        match self {
            StmtKind::Process { name } => write!(f, "{verb} {name}"),
            StmtKind::Fork { child } => write!(f, "{verb} {child}"),
            StmtKind::Exit => f.write_str(verb),
            StmtKind::Mmap {
                name,
                size,
                align,
                at,
                prot,
                kind,
            } => {
                write!(f, "{verb} {name} size={}", Size(*size))?;
                if let Some(align) = align {
                    write!(f, " align={}", Size(*align))?;
                }
                if let Some(at) = at {
                    write!(f, " at={at}")?;
                }
                if *prot != Prot::default() {
                    write!(f, " prot={prot}")?;
                }
                if *kind != MapKind::default() {
                    write!(f, " kind={kind}")?;
                }
                Ok(())
            }
            StmtKind::Munmap { span } | StmtKind::MadviseDontneed { span } => {
                write!(f, "{verb} {span}")?;
                if matches!(self, StmtKind::MadviseDontneed { .. }) {
                    f.write_str(" dontneed")?;
                }
                Ok(())
            }
            StmtKind::Mremap {
                name,
                new_name,
                size,
                dontunmap,
            } => {
                write!(f, "{verb} {name} new={new_name}")?;
                if let Some(size) = size {
                    write!(f, " size={}", Size(*size))?;
                }
                if *dontunmap {
                    f.write_str(" dontunmap")?;
                }
                Ok(())
            }
            StmtKind::Mprotect { span, prot } => write!(f, "{verb} {span} prot={prot}"),
            StmtKind::CpuWrite { span, fill } => write!(f, "{verb} {span} fill={fill}"),
            StmtKind::GpuWrite { span, fill, dev } => {
                write!(f, "{verb} {span} fill={fill}")?;
                write_dev(f, *dev)
            }
            StmtKind::CpuRead { span, expect } | StmtKind::GpuRead { span, expect, .. } => {
                write!(f, "{verb} {span}")?;
                if let Some(expect) = expect {
                    write!(f, " expect={expect}")?;
                }
                match self {
                    StmtKind::GpuRead { dev, .. } => write_dev(f, *dev),
                    _ => Ok(()),
                }
            }
            StmtKind::GpuAtomic { addr, count, dev } => {
                write!(f, "{verb} {addr}")?;
                if *count != 1 {
                    write!(f, " count={count}")?;
                }
                write_dev(f, *dev)
            }
            StmtKind::Prefetch { span, to, dev } => {
                write!(f, "{verb} {span} to={to}")?;
                write_dev(f, *dev)
            }
            StmtKind::Advise {
                span,
                preferred,
                atomic,
            } => {
                write!(f, "{verb} {span}")?;
                if let Some(preferred) = preferred {
                    write!(f, " preferred={preferred}")?;
                }
                if let Some(atomic) = atomic {
                    write!(f, " atomic={atomic}")?;
                }
                Ok(())
            }
            StmtKind::Evict { dev, span } => {
                f.write_str(verb)?;
                write_dev(f, *dev)?;
                if let Some(span) = span {
                    write!(f, " {span}")?;
                }
                Ok(())
            }
            StmtKind::RemoveDevice { dev } => write!(f, "{verb} dev={dev}"),
            StmtKind::BindBo { span, dev } => {
                write!(f, "{verb} {span}")?;
                write_dev(f, *dev)
            }
            StmtKind::Concurrent { seed, body } => {
                writeln!(f, "{verb} seed={seed} {{")?;
                for stmt in body {
                    writeln!(f, "  {stmt}")?;
                }
                f.write_str("}")
            }
            StmtKind::ExpectResidency { span, loc, dev } => {
                write!(f, "{verb} {span} in={loc}")?;
                write_dev(f, *dev)
            }
            StmtKind::ExpectRanges { op, value } => write!(f, "{verb} {op} {value}"),
            StmtKind::ExpectStat { name, op, value } => write!(f, "{verb} {name} {op} {value}"),
            StmtKind::ExpectChunk { addr, size } => {
                write!(f, "{verb} {addr} {} {}", CmpOp::Eq, Size(*size))
            }
        }
    }
}

/// The statistic names every release provides to `expect stat` (per process unless noted).
pub const STAT_NAMES: &[&str] = &[
    "gpu_faults",
    "ranges",
    "notifiers",
    "migrations_to_vram",
    "migrations_to_ram",
    "bytes_to_vram",
    "bytes_to_ram",
    "evictions",
    "tlb_invalidations",
    "dma_mappings",
    "vram_bytes",
    "retries",
];

/// Enums whose values are spelled by a fixed keyword; lets the parser look them up and list
/// the valid spellings in error messages.
pub(crate) trait Keyword: Sized + Copy + 'static {
    /// Every value, in declaration order.
    fn all() -> &'static [Self];
    /// The keyword spelling `self`.
    fn keyword(self) -> &'static str;
}

/// Declares a fieldless enum spelled by keywords, with `ALL`, `keyword`, `from_keyword`,
/// `Display` and [`Keyword`].
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $kw:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The keyword spelling this value in a scenario file.
            pub fn keyword(self) -> &'static str {
                match self {
                    $( $name::$variant => $kw, )+
                }
            }

            /// Looks up the value spelled `word` (exact and case-sensitive).
            pub fn from_keyword(word: &str) -> Option<Self> {
                match word {
                    $( $kw => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl Keyword for $name {
            fn all() -> &'static [Self] {
                Self::ALL
            }

            fn keyword(self) -> &'static str {
                $name::keyword(self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.keyword())
            }
        }
    };
}

keyword_enum! {
    /// Whether the GPUs share one device-private owner (`owners=shared|separate`).
    pub enum Owners {
        /// All GPUs share one owner, so they may map each other's device memory.
        Shared => "shared",
        /// Each GPU has its own owner.
        Separate => "separate",
    }
}

keyword_enum! {
    /// A mapping protection (`prot=rw|r|none`).
    #[derive(Default)]
    pub enum Prot {
        /// Readable and writable (the default).
        #[default]
        Rw => "rw",
        /// Read-only.
        R => "r",
        /// No access.
        None => "none",
    }
}

keyword_enum! {
    /// The kind of memory backing a region (`kind=anon|shared|file|thp|hugetlb`).
    #[derive(Default)]
    pub enum MapKind {
        /// Private anonymous memory (the default).
        #[default]
        Anon => "anon",
        /// `MAP_SHARED` anonymous memory.
        Shared => "shared",
        /// A private file mapping.
        File => "file",
        /// Anonymous memory backed by 2M transparent huge pages where aligned.
        Thp => "thp",
        /// hugetlbfs memory.
        Hugetlb => "hugetlb",
    }
}

keyword_enum! {
    /// Where `prefetch` moves pages (`to=vram|ram`).
    pub enum Placement {
        /// Device memory.
        Vram => "vram",
        /// System memory.
        Ram => "ram",
    }
}

keyword_enum! {
    /// The atomic-access mode `advise` sets (`atomic=device|global|cpu|default`).
    pub enum AtomicMode {
        /// Atomics from the device only.
        Device => "device",
        /// Atomics from the device and the CPU.
        Global => "global",
        /// Atomics from the CPU only.
        Cpu => "cpu",
        /// The driver's default.
        Default => "default",
    }
}

keyword_enum! {
    /// Where `expect residency` requires a span's pages to be (`in=vram|ram|mixed|none`).
    pub enum Residency {
        /// Every page is in device memory.
        Vram => "vram",
        /// Every page is in system memory.
        Ram => "ram",
        /// Some pages in each.
        Mixed => "mixed",
        /// No page is populated.
        None => "none",
    }
}

keyword_enum! {
    /// A comparison operator of the `expect` statements.
    pub enum CmpOp {
        /// `==`
        Eq => "==",
        /// `!=`
        Ne => "!=",
        /// `<`
        Lt => "<",
        /// `<=`
        Le => "<=",
        /// `>`
        Gt => ">",
        /// `>=`
        Ge => ">=",
    }
}

impl CmpOp {
    /// Returns whether `lhs OP rhs` holds.
    pub fn holds(self, lhs: u64, rhs: u64) -> bool {
        match self {
            CmpOp::Eq => lhs == rhs,
            CmpOp::Ne => lhs != rhs,
            CmpOp::Lt => lhs < rhs,
            CmpOp::Le => lhs <= rhs,
            CmpOp::Gt => lhs > rhs,
            CmpOp::Ge => lhs >= rhs,
        }
    }
}

/// The placement `advise` prefers (`preferred=vram|ram|devK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preferred {
    /// The accessing device's memory.
    Vram,
    /// System memory.
    Ram,
    /// The memory of device `K` (`devK`).
    Dev(u32),
}

impl fmt::Display for Preferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Preferred::Vram => f.write_str("vram"),
            Preferred::Ram => f.write_str("ram"),
            Preferred::Dev(k) => write!(f, "dev{k}"),
        }
    }
}

/// An address: a named region plus an offset, or an absolute number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `NAME` or `NAME+OFF+OFF...`: `offset` bytes into the region `name` (the offsets summed).
    Named {
        /// The region, as named by `mmap` or `mremap new=`.
        name: String,
        /// The byte offset from the region start.
        offset: u64,
    },
    /// An absolute virtual address.
    Absolute(u64),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Named { name, offset: 0 } => f.write_str(name),
            Address::Named { name, offset } => write!(f, "{name}+{}", Size(*offset)),
            Address::Absolute(addr) => write!(f, "{addr:#x}"),
        }
    }
}

/// A span: an address and a length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// The first byte.
    pub addr: Address,
    /// The length in bytes; `None` covers the rest of the region.
    pub len: Option<u64>,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(len) = self.len {
            write!(f, " len={}", Size(len))?;
        }
        Ok(())
    }
}

/// What a write stores (`fill=BYTE|seed:N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fill {
    /// Every byte gets this value.
    Byte(u8),
    /// Each byte gets [`seed_byte(N, address)`](super::pattern::seed_byte).
    Seed(u64),
}

impl fmt::Display for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Pattern::from(*self).fmt(f)
    }
}

/// What a read must find (`expect=BYTE|seed:N|u64:V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Every byte has this value.
    Byte(u8),
    /// Each byte is [`seed_byte(N, address)`](super::pattern::seed_byte).
    Seed(u64),
    /// The span is 8 bytes holding this little-endian value.
    U64(u64),
}

impl From<Fill> for Pattern {
    /// The pattern a read finds after the write `fill`.
    fn from(fill: Fill) -> Self {
        match fill {
            Fill::Byte(b) => Pattern::Byte(b),
            Fill::Seed(s) => Pattern::Seed(s),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Byte(b) => write!(f, "{b}"),
            Pattern::Seed(s) => write!(f, "seed:{s}"),
            Pattern::U64(v) => write!(f, "u64:{v}"),
        }
    }
}

/// The outcomes a statement may have; it fails if the actual one is not listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Outcome {
    /// The accepted alternatives, in source order, without duplicates; never empty.
    pub alts: Vec<Expected>,
}

impl Default for Outcome {
    /// `-> ok`, the outcome of a statement without `->`.
    fn default() -> Self {
        Outcome {
            alts: vec![Expected::Ok],
        }
    }
}

impl Outcome {
    /// Returns `true` for the default outcome `-> ok`.
    pub fn is_default(&self) -> bool {
        self.alts == [Expected::Ok]
    }

    /// Returns whether success is accepted.
    pub fn allows_ok(&self) -> bool {
        self.alts.contains(&Expected::Ok)
    }

    /// Returns whether failing with errno `errno` is accepted. Both the positive value (`14`)
    /// and the kernel's negative convention (`-14`) are understood.
    pub fn allows_errno(&self, errno: i32) -> bool {
        let errno = errno.unsigned_abs();
        self.alts.iter().any(|alt| match alt {
            Expected::Errno(e) => e.errno().unsigned_abs() == errno,
            _ => false,
        })
    }

    /// Returns whether a CPU segmentation fault is accepted.
    pub fn allows_segv(&self) -> bool {
        self.alts.contains(&Expected::Segv)
    }
}

impl fmt::Display for Outcome {
    /// Prints the alternatives separated by `|`, e.g. `ok|EFAULT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, alt) in self.alts.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{alt}")?;
        }
        Ok(())
    }
}

/// One accepted outcome of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expected {
    /// `ok`: the statement succeeds.
    Ok,
    /// `ERRNO`: the statement fails with this error.
    Errno(Errno),
    /// `SEGV`: the CPU itself faults on the access.
    Segv,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Ok => f.write_str("ok"),
            Expected::Errno(e) => f.write_str(e.name()),
            Expected::Segv => f.write_str("SEGV"),
        }
    }
}

/// Declares [`Errno`] from `(variant, value)` pairs; the name is the variant's spelling.
macro_rules! errnos {
    ($( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+) => {
        /// An error number a statement may fail with, named as in Linux `errno.h`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Errno {
            $( $(#[$vmeta])* $variant, )+
        }

        impl Errno {
            /// Every known errno, in declaration order.
            pub const ALL: &'static [Errno] = &[$(Errno::$variant,)+];

            /// The name, e.g. `"EFAULT"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Errno::$variant => stringify!($variant), )+
                }
            }

            /// The positive Linux value, e.g. 14 for `EFAULT`.
            pub fn errno(&self) -> i32 {
                match self {
                    $( Errno::$variant => $value, )+
                }
            }
        }
    };
}

errnos! {
    /// Operation not permitted.
    EPERM = 1,
    /// No such file or directory (upstream: no range or pages to work on).
    ENOENT = 2,
    /// Interrupted system call.
    EINTR = 4,
    /// I/O error.
    EIO = 5,
    /// Try again.
    EAGAIN = 11,
    /// Out of memory.
    ENOMEM = 12,
    /// Permission denied.
    EACCES = 13,
    /// Bad address.
    EFAULT = 14,
    /// Device or resource busy.
    EBUSY = 16,
    /// File exists.
    EEXIST = 17,
    /// No such device.
    ENODEV = 19,
    /// Invalid argument.
    EINVAL = 22,
    /// No space left on device.
    ENOSPC = 28,
    /// Result out of range.
    ERANGE = 34,
    /// Resource deadlock would occur.
    EDEADLK = 35,
    /// Timer expired.
    ETIME = 62,
    /// Operation not supported.
    EOPNOTSUPP = 95,
}

impl Errno {
    /// Looks up an errno by its exact (uppercase) name.
    pub fn from_name(name: &str) -> Option<Errno> {
        Errno::ALL.iter().copied().find(|e| e.name() == name)
    }

    /// Looks up an errno by its value; the sign is ignored, so `-14` is `EFAULT` too.
    pub fn from_errno(errno: i32) -> Option<Errno> {
        let errno = errno.unsigned_abs();
        Errno::ALL
            .iter()
            .copied()
            .find(|e| e.errno().unsigned_abs() == errno)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Prints a byte count with the largest binary suffix that divides it exactly (`2M`, `68K`,
/// `4097`), so printed sizes read like hand-written ones and parse back to the same value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size(pub(crate) u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
        let v = self.0;
        if v != 0 {
            for (unit, suffix) in UNITS {
                if v.is_multiple_of(unit) {
                    return write!(f, "{}{suffix}", v / unit);
                }
            }
        }
        write!(f, "{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_linux() {
        let expected = [
            ("EPERM", 1),
            ("ENOENT", 2),
            ("EINTR", 4),
            ("EAGAIN", 11),
            ("ENOMEM", 12),
            ("EACCES", 13),
            ("EFAULT", 14),
            ("EBUSY", 16),
            ("ENODEV", 19),
            ("EINVAL", 22),
            ("ERANGE", 34),
            ("ETIME", 62),
            ("EOPNOTSUPP", 95),
        ];
        for (name, value) in expected {
            let e = Errno::from_name(name).expect(name);
            assert_eq!(e.name(), name);
            assert_eq!(e.errno(), value, "{name}");
            assert_eq!(Errno::from_errno(value), Some(e));
            assert_eq!(Errno::from_errno(-value), Some(e));
        }
        assert_eq!(Errno::from_name("efault"), None);
        assert_eq!(Errno::from_errno(0), None);
        assert_eq!(Errno::from_errno(i32::MIN), None);
    }

    #[test]
    fn errno_names_and_values_are_unique() {
        for (i, a) in Errno::ALL.iter().enumerate() {
            for b in Errno::ALL.iter().skip(i + 1) {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.errno(), b.errno());
            }
        }
    }

    #[test]
    fn cmp_op_holds() {
        let table = [
            (CmpOp::Eq, [false, true, false]),
            (CmpOp::Ne, [true, false, true]),
            (CmpOp::Lt, [true, false, false]),
            (CmpOp::Le, [true, true, false]),
            (CmpOp::Gt, [false, false, true]),
            (CmpOp::Ge, [false, true, true]),
        ];
        for (op, [less, equal, greater]) in table {
            assert_eq!(op.holds(1, 2), less, "{op} less");
            assert_eq!(op.holds(2, 2), equal, "{op} equal");
            assert_eq!(op.holds(3, 2), greater, "{op} greater");
        }
        assert!(CmpOp::Ge.holds(u64::MAX, u64::MAX));
    }

    #[test]
    fn outcome_queries_and_display() {
        let outcome = Outcome {
            alts: vec![Expected::Ok, Expected::Errno(Errno::EFAULT)],
        };
        assert!(outcome.allows_ok());
        assert!(outcome.allows_errno(14));
        assert!(outcome.allows_errno(-14));
        assert!(!outcome.allows_errno(2));
        assert!(!outcome.allows_errno(i32::MIN));
        assert!(!outcome.allows_segv());
        assert_eq!(outcome.to_string(), "ok|EFAULT");
        assert!(!outcome.is_default());

        let segv = Outcome {
            alts: vec![Expected::Segv],
        };
        assert!(segv.allows_segv());
        assert!(!segv.allows_ok());
        assert_eq!(segv.to_string(), "SEGV");

        assert!(Outcome::default().is_default());
        assert!(Outcome::default().allows_ok());
        assert_eq!(Outcome::default().to_string(), "ok");
    }

    #[test]
    fn size_display_uses_exact_suffixes() {
        assert_eq!(Size(0).to_string(), "0");
        assert_eq!(Size(1).to_string(), "1");
        assert_eq!(Size(4096).to_string(), "4K");
        assert_eq!(Size(4097).to_string(), "4097");
        assert_eq!(Size(2 << 20).to_string(), "2M");
        assert_eq!(Size((1 << 20) + (4 << 10)).to_string(), "1028K");
        assert_eq!(Size(3 << 30).to_string(), "3G");
        assert_eq!(Size(u64::MAX).to_string(), u64::MAX.to_string());
        assert_eq!(Size(u64::MAX - 1023).to_string(), "18014398509481983K");
    }

    #[test]
    fn keyword_enums_round_trip() {
        for p in Prot::ALL {
            assert_eq!(Prot::from_keyword(p.keyword()), Some(*p));
        }
        for k in MapKind::ALL {
            assert_eq!(MapKind::from_keyword(&k.to_string()), Some(*k));
        }
        for op in CmpOp::ALL {
            assert_eq!(CmpOp::from_keyword(op.keyword()), Some(*op));
        }
        assert_eq!(Prot::default(), Prot::Rw);
        assert_eq!(MapKind::default(), MapKind::Anon);
        assert_eq!(Prot::from_keyword("RW"), None);
    }

    #[test]
    fn address_and_span_display() {
        let named = Address::Named {
            name: "A".into(),
            offset: (1 << 20) + 4096,
        };
        assert_eq!(named.to_string(), "A+1028K");
        let base = Address::Named {
            name: "buf_2".into(),
            offset: 0,
        };
        assert_eq!(base.to_string(), "buf_2");
        assert_eq!(Address::Absolute(0x7f00_0000).to_string(), "0x7f000000");
        let span = Span {
            addr: named,
            len: Some(8),
        };
        assert_eq!(span.to_string(), "A+1028K len=8");
    }
}
