//! Scenario files (`.svm`): the scripts of CPU, GPU and mm events the simulator runs.
//!
//! Contract: `shared/brief/scenario-format.md`. Every release must accept that grammar
//! unchanged; this module may add to it, never change it.
//!
//! # The format in brief
//!
//! One statement per line; `#` starts a comment; blank lines are ignored; keywords are
//! lowercase. A statement is a verb, then positional words (a region name or an address),
//! then `key=value` options in any order, then an optional outcome:
//!
//! ```text
//! config vram=64M chunks=2M,64K,4K          # set-up, before any statement
//! mmap A size=2M align=2M
//! cpu write A fill=seed:1                    # seed:N = documented byte function
//! gpu write A+1M len=4K fill=7 dev=0
//! munmap A len=1M
//! cpu read A len=4K -> SEGV                  # expected outcome(s)
//! concurrent seed=1 {                        # each inner statement is a thread
//!   gpu write A len=2M fill=1 -> ok|EFAULT
//!   munmap A+1M len=1M
//! }
//! expect stat gpu_faults >= 1
//! ```
//!
//! Numbers are decimal or `0x` hex with an optional binary suffix `K`, `M` or `G`; addresses are
//! `NAME`, `NAME+OFF+OFF...` or absolute numbers; a span is an address plus an optional
//! `len=` (the rest of the region without it).
//!
//! # Design
//!
//! - [`ast`] is a fully typed tree: every verb is a [`StmtKind`](ast::StmtKind) variant with
//!   typed fields, so the simulator never re-parses strings. Values are only *syntactically*
//!   checked; semantic checks (does region `A` exist, is `dev=3` present) belong to the
//!   simulator, because scenarios deliberately provoke those failures and expect an errno.
//! - [`parse`](parse::parse) is a hand-written, line-oriented parser over `&str`. It never
//!   panics on any input and reports the first error as `file:line:col: message`, pointing at
//!   the offending token and, where it helps, suggesting the fix.
//! - The tree prints back in source form (`Display`), so error reports can quote statements
//!   and `parse(print(tree))` gives the same tree (positions aside), which the tests check.
//! - [`pattern`] defines the byte function of `seed:N`, which the format requires to be
//!   documented, and the fill and check helpers built on it.
//!
//! # Where the format is silent
//!
//! These choices are the parser's, not the contract's:
//!
//! - Positional words (the address or name) come right after the verb in the order shown by
//!   the format; `key=value` options and flags (`dontunmap`, `dontneed`) may follow in any order.
//!   A word is taken as a flag only once the positional argument is present, so
//!   `mremap dontunmap new=B` moves a region named `dontunmap`.
//! - An absolute address may carry offsets too (`0x1000+4K`); they are folded into the number.
//! - Spaces around `|` in outcomes are allowed; an alternative listed twice is an error.
//! - Expectations (`expect ...`), `config`, `concurrent` and `}` take no `->` outcome.
//! - `advise` needs at least one of `preferred=` and `atomic=`; `config` needs at least one key.
//! - A `concurrent` block may not be empty and may not contain `process` (which switches the
//!   current process for later statements rather than being a thread of its own).
//! - `expect stat` names are checked against [`ast::STAT_NAMES`], so a typo fails at parse
//!   time with a suggestion instead of at run time.
//! - Columns count characters (a tab is one column); a leading UTF-8 byte-order mark is
//!   ignored.

pub mod ast;
pub mod parse;
pub mod pattern;

pub use parse::{parse, ParseError};
