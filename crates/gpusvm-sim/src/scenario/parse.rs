//! The scenario parser: text in, [`Scenario`] or a positioned [`ParseError`] out.
//!
//! Parsing is line-oriented and happens in three layers:
//!
//! 1. **Lexing** ([`lex_line`]): strip the `\r` of a `\r\n` ending and the `#` comment, cut the
//!    line at the first `->` into the statement and its outcome, and split the statement at
//!    ASCII whitespace into [`Token`]s that remember their 1-based column (counted in
//!    characters, a tab counting as one).
//! 2. **Statements** ([`parse_stmt`]): the first word (two for `cpu`, `gpu` and `expect`)
//!    selects the verb. The remaining words are sorted by [`Args`] into `key=value` options
//!    (any order, each at most once, only the verb's keys) and bare words (the positional
//!    address or name, then flags such as `dontunmap`). Values are parsed by small functions
//!    ([`parse_number`], [`parse_address`], ...) that report the column of the exact offending
//!    character.
//! 3. **Structure** ([`Parser`]): `config` lines must precede every statement and are merged;
//!    `concurrent seed=N {` opens a block that a lone `}` closes, one level deep.
//!
//! Nothing here can panic on any input: text is only sliced at offsets produced by
//! `char_indices` or `find` (always char boundaries) and through `get`, numbers use checked
//! arithmetic, and counters saturate.

use std::fmt;

use super::ast::{
    Address, AtomicMode, CmpOp, Config, Errno, Expected, Fill, Keyword, MapKind, Outcome, Owners,
    Pattern, Placement, Preferred, Prot, Residency, Scenario, Span, Stmt, StmtKind, STAT_NAMES,
};

/// A syntax error, positioned at the offending token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name given to [`parse`].
    pub file: String,
    /// The 1-based line of the error.
    pub line: u32,
    /// The 1-based column (in characters) of the offending token.
    pub col: u32,
    /// What is wrong, and where possible what was expected.
    pub message: String,
}

impl fmt::Display for ParseError {
    /// Prints `file:line:col: message`, the format compilers use, so editors can jump to it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses the scenario `text`; `file` is only used to label errors.
///
/// # Examples
///
/// ```
/// use gpusvm_sim::scenario::{ast::StmtKind, parse};
///
/// let scenario = parse("demo.svm", "config vram=64M\nmmap A size=2M\nmunmap A len=1M\n").unwrap();
/// assert_eq!(scenario.config.vram, Some(64 << 20));
/// assert!(matches!(scenario.stmts[1].kind, StmtKind::Munmap { .. }));
///
/// let err = parse("demo.svm", "mmap A size=2M\nmunmap A lenn=1M\n").unwrap_err();
/// assert_eq!(err.to_string(), "demo.svm:2:10: unknown key 'lenn' for munmap (expected len=)");
/// ```
pub fn parse(file: &str, text: &str) -> Result<Scenario, ParseError> {
    let mut parser = Parser::default();
    // A UTF-8 byte-order mark is invisible to the author, so it must not shift column 1.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut line_no: u32 = 0;
    for raw in text.split('\n') {
        line_no = line_no.saturating_add(1);
        parser.line(line_no, raw).map_err(|p| p.at(file, line_no))?;
    }
    parser.finish().map_err(|(line, p)| p.at(file, line))
}

/// An error inside one line: the column and the message; [`Problem::at`] adds file and line.
#[derive(Debug)]
struct Problem {
    col: u32,
    message: String,
}

impl Problem {
    fn at(self, file: &str, line: u32) -> ParseError {
        ParseError {
            file: file.to_owned(),
            line,
            col: self.col,
            message: self.message,
        }
    }
}

/// Shorthand for an error at `col`.
fn problem<T>(col: u32, message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem {
        col,
        message: message.into(),
    })
}

type Res<T> = Result<T, Problem>;

/// Quotes user text for a message, escaping control characters and truncating long garbage so
/// an error about a megabyte-long token stays readable.
fn quote(text: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::from("'");
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('\'');
    out
}

/// Counts characters, saturating into a column number.
fn char_count(text: &str) -> u32 {
    u32::try_from(text.chars().count()).unwrap_or(u32::MAX)
}

/// Levenshtein distance, for "did you mean" hints; only called on short words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let delete = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let insert = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(substitute.min(delete).min(insert));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// A hint for a misspelt keyword: `keywords are lowercase: did you mean 'x'?` when only the case
/// is wrong, `did you mean 'x'?` for a near miss, or nothing.
fn hint(word: &str, candidates: &[&str]) -> String {
    hint_with_suffix(word, candidates, "")
}

/// [`hint`], with `suffix` appended to the suggested word (e.g. `=` for keys).
fn hint_with_suffix(word: &str, candidates: &[&str], suffix: &str) -> String {
    // Words longer than any keyword are never near misses; skipping them also bounds the
    // quadratic distance computation on garbage input.
    if word.is_empty() || word.len() > 32 {
        return String::new();
    }
    let lower = word.to_ascii_lowercase();
    if lower != word && candidates.contains(&lower.as_str()) {
        return format!("keywords are lowercase: did you mean '{lower}{suffix}'?");
    }
    let best = candidates
        .iter()
        .map(|c| (edit_distance(&lower, c), *c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= 2 && d < c.len() => format!("did you mean '{c}{suffix}'?"),
        _ => String::new(),
    }
}

/// Joins `a, b or c` for messages.
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Appends `detail` to `message` after `sep` when it is non-empty.
fn with_hint(mut message: String, detail: &str) -> String {
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(detail);
    }
    message
}

/// A word of a line and its 1-based column.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    col: u32,
}

impl<'a> Token<'a> {
    /// The column of the byte offset `byte` inside the token.
    fn col_at(&self, byte: usize) -> u32 {
        let before = self.text.get(..byte).unwrap_or(self.text);
        self.col.saturating_add(char_count(before))
    }

    /// The part of the token from byte `start` to byte `end`, with its own column.
    fn slice(&self, start: usize, end: usize) -> Token<'a> {
        Token {
            text: self.text.get(start..end).unwrap_or(""),
            col: self.col_at(start),
        }
    }

    /// The column just after the token.
    fn end_col(&self) -> u32 {
        self.col_at(self.text.len())
    }
}

/// A line split into the statement words and the outcome.
#[derive(Debug)]
struct LexedLine<'a> {
    /// The statement's words.
    tokens: Vec<Token<'a>>,
    /// The text after `->` and the column of the `->`, if the line has one.
    outcome: Option<(Token<'a>, u32)>,
    /// The column just after the last statement word, where a missing argument belongs.
    end_col: u32,
}

/// Splits `text` (starting at column `col`) at ASCII whitespace.
fn tokenize(text: &str, mut col: u32) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut start: Option<(usize, u32)> = None;
    for (i, c) in text.char_indices() {
        match (c.is_ascii_whitespace(), start) {
            (true, Some((s, scol))) => {
                tokens.push(Token {
                    text: text.get(s..i).unwrap_or(""),
                    col: scol,
                });
                start = None;
            }
            (false, None) => start = Some((i, col)),
            _ => {}
        }
        col = col.saturating_add(1);
    }
    if let Some((s, scol)) = start {
        tokens.push(Token {
            text: text.get(s..).unwrap_or(""),
            col: scol,
        });
    }
    tokens
}

/// Lexes one line (see the module docs).
fn lex_line(raw: &str) -> LexedLine<'_> {
    let line = raw.strip_suffix('\r').unwrap_or(raw);
    let code = match line.find('#') {
        Some(hash) => line.get(..hash).unwrap_or(""),
        None => line,
    };
    // `-` appears in no word of the grammar, so the first `->` always starts the outcome.
    let (head, outcome) = match code.find("->") {
        Some(arrow) => {
            let head = code.get(..arrow).unwrap_or("");
            let arrow_col = char_count(head).saturating_add(1);
            let tail = Token {
                text: code.get(arrow + 2..).unwrap_or(""),
                col: arrow_col.saturating_add(2),
            };
            (head, Some((tail, arrow_col)))
        }
        None => (code, None),
    };
    let tokens = tokenize(head, 1);
    let end_col = tokens.last().map_or(1, |t| t.end_col().saturating_add(1));
    LexedLine {
        tokens,
        outcome,
        end_col,
    }
}

/// The binary suffixes of numbers and their multipliers.
const SUFFIXES: [(char, u64); 3] = [('K', 1 << 10), ('M', 1 << 20), ('G', 1 << 30)];

/// Parses a number: decimal or `0x` hex, with an optional binary suffix `K`, `M` or `G`.
fn parse_number(tok: Token<'_>, what: &str) -> Res<u64> {
    let text = tok.text;
    if text.is_empty() {
        return problem(tok.col, format!("expected a number for {what}"));
    }
    let too_large = || {
        problem(
            tok.col,
            format!(
                "number {} for {what} is too large (the maximum is {})",
                quote(text),
                u64::MAX
            ),
        )
    };
    let (digits_start, radix) = if text.starts_with("0x") {
        (2, 16)
    } else if text.starts_with("0X") {
        return problem(tok.col, "hex numbers start with lowercase '0x'");
    } else {
        (0, 10)
    };
    let mut value: u64 = 0;
    let mut digits = 0usize;
    let mut multiplier = 1u64;
    let mut rest = text.char_indices().skip_while(|(i, _)| *i < digits_start);
    for (i, c) in rest.by_ref() {
        if let Some(d) = c.to_digit(radix) {
            value = match value
                .checked_mul(u64::from(radix))
                .and_then(|v| v.checked_add(u64::from(d)))
            {
                Some(v) => v,
                None => return too_large(),
            };
            digits += 1;
            continue;
        }
        if digits == 0 {
            let message = if c == '-' {
                format!("{what} cannot be negative")
            } else if radix == 16 {
                format!("expected hex digits after '0x' in {}", quote(text))
            } else {
                format!("expected a number for {what}, found {}", quote(text))
            };
            return problem(tok.col_at(i), message);
        }
        match SUFFIXES.iter().find(|(s, _)| *s == c) {
            Some((_, m)) => multiplier = *m,
            None if SUFFIXES.iter().any(|(s, _)| s.to_ascii_lowercase() == c) => {
                return problem(
                    tok.col_at(i),
                    format!(
                        "size suffixes are uppercase: write '{}'",
                        c.to_ascii_uppercase()
                    ),
                );
            }
            None => {
                return problem(
                    tok.col_at(i),
                    format!(
                        "invalid character {} in number {} (expected digits and an optional K, M or G suffix)",
                        quote(&c.to_string()),
                        quote(text)
                    ),
                );
            }
        }
        // The suffix must be the last character.
        if let Some((j, _)) = rest.next() {
            return problem(
                tok.col_at(j),
                format!("unexpected text after the suffix in number {}", quote(text)),
            );
        }
        break;
    }
    if digits == 0 {
        return problem(
            tok.col,
            format!("expected hex digits after '0x' for {what}"),
        );
    }
    match value.checked_mul(multiplier) {
        Some(v) => Ok(v),
        None => too_large(),
    }
}

/// Parses a number that must fit in 32 bits (device indices and counts).
fn parse_u32(tok: Token<'_>, what: &str) -> Res<u32> {
    let value = parse_number(tok, what)?;
    match u32::try_from(value) {
        Ok(v) => Ok(v),
        Err(_) => problem(
            tok.col,
            format!("{what} {value} is too large (the maximum is {})", u32::MAX),
        ),
    }
}

/// Returns whether `text` is a region or process name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a region or process name.
fn parse_identifier(tok: Token<'_>, what: &str) -> Res<String> {
    if is_identifier(tok.text) {
        return Ok(tok.text.to_owned());
    }
    let bad = tok
        .text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphanumeric() || c == '_') || (i == 0 && c.is_ascii_digit()));
    let (col, why) = match bad {
        Some((0, c)) if c.is_ascii_digit() => (tok.col, "must not start with a digit".to_owned()),
        Some((i, c)) => (tok.col_at(i), format!("contains {}", quote(&c.to_string()))),
        None => (tok.col, "is empty".to_owned()),
    };
    problem(
        col,
        format!(
            "invalid {what} {}: it {why} (names are letters, digits and '_', not starting with a digit)",
            quote(tok.text)
        ),
    )
}

/// Parses an address: `NAME`, `NAME+OFF+...` or an absolute number (also `+OFF`-able).
fn parse_address(tok: Token<'_>) -> Res<Address> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in tok.text.char_indices() {
        if c == '+' {
            parts.push(tok.slice(start, i));
            start = i + 1;
        }
    }
    parts.push(tok.slice(start, tok.text.len()));
    let mut parts = parts.into_iter();
    let Some(base) = parts.next() else {
        return problem(tok.col, "expected an address");
    };
    let starts_with_digit = base.text.chars().next().is_some_and(|c| c.is_ascii_digit());
    if base.text.is_empty() {
        return problem(base.col, "expected a region name or a number before '+'");
    }
    let mut offset: u64 = 0;
    for part in parts {
        if part.text.is_empty() {
            return problem(part.col, "expected an offset after '+'");
        }
        if part
            .text
            .chars()
            .next()
            .is_some_and(|c| !c.is_ascii_digit())
        {
            return problem(
                part.col,
                format!(
                    "expected a numeric offset after '+', found {}",
                    quote(part.text)
                ),
            );
        }
        let off = parse_number(part, "the offset")?;
        offset = match offset.checked_add(off) {
            Some(v) => v,
            None => return problem(part.col, "address offsets overflow 64 bits"),
        };
    }
    if starts_with_digit {
        let base_value = parse_number(base, "the address")?;
        match base_value.checked_add(offset) {
            Some(v) => Ok(Address::Absolute(v)),
            None => problem(tok.col, "address overflows 64 bits"),
        }
    } else {
        let name = parse_identifier(base, "region name")?;
        Ok(Address::Named { name, offset })
    }
}

/// Parses a byte value (0 to 255).
fn parse_byte(tok: Token<'_>, what: &str) -> Res<u8> {
    let value = parse_number(tok, what)?;
    match u8::try_from(value) {
        Ok(b) => Ok(b),
        Err(_) => problem(
            tok.col,
            format!("byte value {value} for {what} is out of range (0 to 255)"),
        ),
    }
}

/// Parses `BYTE`, `seed:N` or (when `allow_u64`) `u64:V`.
fn parse_pattern(tok: Token<'_>, key: &str, allow_u64: bool) -> Res<Pattern> {
    let valid = if allow_u64 {
        "BYTE, seed:N or u64:V"
    } else {
        "BYTE or seed:N"
    };
    let Some(colon) = tok.text.find(':') else {
        if tok.text.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return Ok(Pattern::Byte(parse_byte(tok, key)?));
        }
        return problem(
            tok.col,
            format!(
                "invalid {key}= value {} (expected {valid})",
                quote(tok.text)
            ),
        );
    };
    let kind = tok.slice(0, colon);
    let value = tok.slice(colon + 1, tok.text.len());
    match kind.text {
        "seed" => Ok(Pattern::Seed(parse_number(value, "the seed")?)),
        "u64" if allow_u64 => Ok(Pattern::U64(parse_number(value, "the u64 value")?)),
        "u64" => problem(
            kind.col,
            format!("u64:V only checks reads; {key}= takes {valid}"),
        ),
        other => problem(
            kind.col,
            with_hint(
                format!("invalid pattern kind {} (expected {valid})", quote(other)),
                &hint(other, &["seed", "u64"]),
            ),
        ),
    }
}

/// Parses a `fill=` value.
fn parse_fill(tok: Token<'_>) -> Res<Fill> {
    match parse_pattern(tok, "fill", false)? {
        Pattern::Byte(b) => Ok(Fill::Byte(b)),
        Pattern::Seed(s) => Ok(Fill::Seed(s)),
        // parse_pattern rejects u64: when not allowed.
        Pattern::U64(_) => problem(tok.col, "fill= takes BYTE or seed:N"),
    }
}

/// Parses one of the keywords of `T`, e.g. `prot=rw`.
fn parse_keyword<T: Keyword>(tok: Token<'_>, key: &str) -> Res<T> {
    if let Some(v) = T::all().iter().copied().find(|v| v.keyword() == tok.text) {
        return Ok(v);
    }
    let words: Vec<&str> = T::all().iter().map(|v| v.keyword()).collect();
    problem(
        tok.col,
        with_hint(
            format!(
                "invalid {key}= value {} (expected {})",
                quote(tok.text),
                one_of(&words)
            ),
            &hint(tok.text, &words),
        ),
    )
}

/// Parses `on` or `off`.
fn parse_on_off(tok: Token<'_>, key: &str) -> Res<bool> {
    match tok.text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => problem(
            tok.col,
            with_hint(
                format!("invalid {key}= value {} (expected on or off)", quote(other)),
                &hint(other, &["on", "off"]),
            ),
        ),
    }
}

/// Parses `preferred=vram|ram|devK`.
fn parse_preferred(tok: Token<'_>) -> Res<Preferred> {
    match tok.text {
        "vram" => return Ok(Preferred::Vram),
        "ram" => return Ok(Preferred::Ram),
        _ => {}
    }
    if let Some(index) = tok.text.strip_prefix("dev") {
        if !index.is_empty() {
            return Ok(Preferred::Dev(parse_u32(
                tok.slice(3, tok.text.len()),
                "the device index",
            )?));
        }
    }
    problem(
        tok.col,
        with_hint(
            format!(
                "invalid preferred= value {} (expected vram, ram or devK such as dev0)",
                quote(tok.text)
            ),
            &hint(tok.text, &["vram", "ram"]),
        ),
    )
}

/// Parses a comparison operator token.
fn parse_cmp_op(tok: Option<Token<'_>>, end_col: u32) -> Res<CmpOp> {
    let Some(tok) = tok else {
        return problem(
            end_col,
            "expected a comparison operator (==, !=, <, <=, >, >=)",
        );
    };
    match CmpOp::from_keyword(tok.text) {
        Some(op) => Ok(op),
        None if tok.text == "=" => problem(tok.col, "use '==' to compare, not '='"),
        None => problem(
            tok.col,
            format!(
                "expected a comparison operator (==, !=, <, <=, >, >=), found {}",
                quote(tok.text)
            ),
        ),
    }
}

/// Parses the text after `->`: alternatives separated by `|` (spaces around `|` allowed).
fn parse_outcome(tail: Token<'_>, arrow_col: u32) -> Res<Outcome> {
    // Split into words and bars, each with its column.
    let mut items: Vec<Option<Token<'_>>> = Vec::new(); // None is a '|'
    let mut bar_cols = Vec::new();
    for word in tokenize(tail.text, tail.col) {
        let mut start = 0;
        for (i, c) in word.text.char_indices() {
            if c == '|' {
                if i > start {
                    items.push(Some(word.slice(start, i)));
                }
                items.push(None);
                bar_cols.push(word.col_at(i));
                start = i + 1;
            }
        }
        if start < word.text.len() {
            items.push(Some(word.slice(start, word.text.len())));
        }
    }
    if items.is_empty() {
        return problem(
            arrow_col,
            "expected an outcome after '->' (ok, SEGV or an errno name such as EFAULT)",
        );
    }
    let mut alts: Vec<Expected> = Vec::new();
    let mut expect_word = true;
    let mut bars = bar_cols.iter().copied();
    for item in &items {
        match (item, expect_word) {
            (Some(word), true) => {
                let alt = parse_expected(*word)?;
                if alts.contains(&alt) {
                    return problem(word.col, format!("outcome '{alt}' is listed twice"));
                }
                alts.push(alt);
                expect_word = false;
            }
            (Some(word), false) => {
                return problem(
                    word.col,
                    format!("expected '|' between outcomes, found {}", quote(word.text)),
                );
            }
            (None, true) => {
                let col = bars.next().unwrap_or(tail.col);
                return problem(col, "expected an outcome before '|'");
            }
            (None, false) => {
                bars.next();
                expect_word = true;
            }
        }
    }
    if expect_word {
        let col = bar_cols.last().copied().unwrap_or(tail.col);
        return problem(col, "expected an outcome after '|'");
    }
    Ok(Outcome { alts })
}

/// Parses one outcome alternative: `ok`, `SEGV` or an errno name.
fn parse_expected(word: Token<'_>) -> Res<Expected> {
    match word.text {
        "ok" => return Ok(Expected::Ok),
        "SEGV" => return Ok(Expected::Segv),
        _ => {}
    }
    if let Some(e) = Errno::from_name(word.text) {
        return Ok(Expected::Errno(e));
    }
    let upper = word.text.to_ascii_uppercase();
    let detail = if upper == "OK" {
        "write 'ok' in lowercase".to_owned()
    } else if upper == "SEGV" {
        "write 'SEGV' in uppercase".to_owned()
    } else if Errno::from_name(&upper).is_some() {
        format!("errno names are uppercase: write '{upper}'")
    } else {
        let names: Vec<&str> = Errno::ALL.iter().map(Errno::name).collect();
        format!("expected ok, SEGV or one of {}", names.join(", "))
    };
    problem(
        word.col,
        format!("unknown outcome {}: {detail}", quote(word.text)),
    )
}

/// A statement's words after the verb, sorted into `key=value` options and bare words.
struct Args<'a> {
    /// The verb, for messages (`"munmap"`, `"cpu write"`).
    verb: &'static str,
    /// The verb's usage line, appended to "missing ..." messages.
    usage: &'static str,
    /// Bare words in order: positional arguments and flags.
    bare: Vec<Token<'a>>,
    /// `(key, value)` pairs, keys validated against the verb's keys and unique.
    opts: Vec<(Token<'a>, Token<'a>)>,
    /// Where a missing argument belongs.
    end_col: u32,
}

impl<'a> Args<'a> {
    /// Sorts `words`, rejecting unknown and duplicate keys and empty keys or values.
    fn new(
        verb: &'static str,
        usage: &'static str,
        keys: &[&str],
        words: &[Token<'a>],
        end_col: u32,
    ) -> Res<Self> {
        let mut args = Args {
            verb,
            usage,
            bare: Vec::new(),
            opts: Vec::new(),
            end_col,
        };
        for &word in words {
            let Some(eq) = word.text.find('=') else {
                args.bare.push(word);
                continue;
            };
            let key = word.slice(0, eq);
            let value = word.slice(eq + 1, word.text.len());
            if key.text.is_empty() {
                return problem(
                    word.col,
                    format!("missing key before '=' in {}", quote(word.text)),
                );
            }
            if !keys.contains(&key.text) {
                let expected = if keys.is_empty() {
                    format!("{verb} takes no key=value options")
                } else {
                    let list: Vec<String> = keys.iter().map(|k| format!("{k}=")).collect();
                    let prefix = if keys.len() == 1 {
                        "expected"
                    } else {
                        "expected one of"
                    };
                    format!("{prefix} {}", list.join(", "))
                };
                // With a single valid key the list already says it all, except a case slip.
                let hint = hint_with_suffix(key.text, keys, "=");
                let hint = if keys.len() > 1 || hint.starts_with("keywords") {
                    hint
                } else {
                    String::new()
                };
                let message = if hint.is_empty() {
                    format!("unknown key {} for {verb} ({expected})", quote(key.text))
                } else {
                    format!(
                        "unknown key {} for {verb}: {hint} ({expected})",
                        quote(key.text)
                    )
                };
                return problem(key.col, message);
            }
            if let Some((first, _)) = args.opts.iter().find(|(k, _)| k.text == key.text) {
                return problem(
                    key.col,
                    format!(
                        "duplicate key '{}=' (first given at column {})",
                        key.text, first.col
                    ),
                );
            }
            if value.text.is_empty() {
                return problem(value.col, format!("missing value after '{}='", key.text));
            }
            args.opts.push((key, value));
        }
        Ok(args)
    }

    /// The value of `key`, if given.
    fn get(&self, key: &str) -> Option<Token<'a>> {
        self.opts
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(_, v)| *v)
    }

    /// The value of `key`, which the verb requires.
    fn required(&self, key: &str) -> Res<Token<'a>> {
        match self.get(key) {
            Some(v) => Ok(v),
            None => problem(
                self.end_col,
                format!("{} needs {key}= (usage: {})", self.verb, self.usage),
            ),
        }
    }

    /// Splits the bare words into up to `max` positional arguments (the first `required` of
    /// them mandatory) and `flags`. A word counts as a flag only once the mandatory positionals
    /// are filled, so a region may even be named like a flag.
    fn bare(
        &self,
        required: usize,
        max: usize,
        flags: &[&'static str],
    ) -> Res<(Vec<Token<'a>>, Vec<&'static str>)> {
        let mut positional = Vec::new();
        let mut found_flags: Vec<&'static str> = Vec::new();
        for &word in &self.bare {
            let flag = flags.iter().copied().find(|f| *f == word.text);
            match flag {
                Some(flag) if positional.len() >= required => {
                    if found_flags.contains(&flag) {
                        return problem(word.col, format!("duplicate flag '{flag}'"));
                    }
                    found_flags.push(flag);
                }
                _ if positional.len() < max => positional.push(word),
                _ => {
                    let detail = hint(word.text, flags);
                    let message = if word.text == "{" {
                        "only 'concurrent seed=N {' opens a block".to_owned()
                    } else if word.text == "}" {
                        "'}' must be alone on its line".to_owned()
                    } else {
                        with_hint(
                            format!(
                                "unexpected argument {} for {} (usage: {})",
                                quote(word.text),
                                self.verb,
                                self.usage
                            ),
                            &detail,
                        )
                    };
                    return problem(word.col, message);
                }
            }
        }
        if positional.len() < required {
            return problem(
                self.end_col,
                format!("{} needs more arguments (usage: {})", self.verb, self.usage),
            );
        }
        Ok((positional, found_flags))
    }

    /// The single mandatory positional argument, with no flags allowed.
    fn one(&self) -> Res<Token<'a>> {
        let (positional, _) = self.bare(1, 1, &[])?;
        match positional.first() {
            Some(t) => Ok(*t),
            None => problem(self.end_col, format!("usage: {}", self.usage)),
        }
    }

    /// The span made of the positional address `addr` and the optional `len=`.
    fn span(&self, addr: Token<'_>) -> Res<Span> {
        Ok(Span {
            addr: parse_address(addr)?,
            len: self
                .get("len")
                .map(|t| parse_number(t, "len="))
                .transpose()?,
        })
    }

    /// The span of a verb taking just `SPAN` as its positional argument.
    fn only_span(&self) -> Res<Span> {
        let addr = self.one()?;
        self.span(addr)
    }

    /// The optional `dev=K`.
    fn dev(&self) -> Res<Option<u32>> {
        self.get("dev").map(|t| parse_u32(t, "dev=")).transpose()
    }
}

/// Every statement verb, for "did you mean" hints.
const VERBS: &[&str] = &[
    "config",
    "process",
    "fork",
    "exit",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "cpu",
    "gpu",
    "prefetch",
    "advise",
    "evict",
    "remove_device",
    "bind_bo",
    "concurrent",
    "expect",
];

/// Parses the words of a statement (not `config`, `concurrent` or `}`) into its kind.
fn parse_stmt(tokens: &[Token<'_>], end_col: u32) -> Res<StmtKind> {
    let Some((verb, rest)) = tokens.split_first() else {
        return problem(end_col, "expected a statement");
    };
    // Verbs taking only positional words check them with `Args` too, for uniform messages.
    let args = |name: &'static str, usage: &'static str, keys: &[&str], words| {
        Args::new(name, usage, keys, words, end_col)
    };
    let kind = match verb.text {
        "process" => {
            let a = args("process", "process NAME", &[], rest)?;
            StmtKind::Process {
                name: parse_identifier(a.one()?, "process name")?,
            }
        }
        "fork" => {
            let a = args("fork", "fork CHILD", &[], rest)?;
            StmtKind::Fork {
                child: parse_identifier(a.one()?, "process name")?,
            }
        }
        "exit" => {
            args("exit", "exit", &[], rest)?.bare(0, 0, &[])?;
            StmtKind::Exit
        }
        "mmap" => {
            let a = args(
                "mmap",
                "mmap NAME size=SIZE [align=SIZE] [at=ADDR] [prot=rw|r|none] [kind=anon|shared|file|thp|hugetlb]",
                &["size", "align", "at", "prot", "kind"],
                rest,
            )?;
            let name = parse_identifier(a.one()?, "region name")?;
            StmtKind::Mmap {
                name,
                size: parse_number(a.required("size")?, "size=")?,
                align: a
                    .get("align")
                    .map(|t| parse_number(t, "align="))
                    .transpose()?,
                at: a.get("at").map(parse_address).transpose()?,
                prot: a
                    .get("prot")
                    .map(|t| parse_keyword::<Prot>(t, "prot"))
                    .transpose()?
                    .unwrap_or_default(),
                kind: a
                    .get("kind")
                    .map(|t| parse_keyword::<MapKind>(t, "kind"))
                    .transpose()?
                    .unwrap_or_default(),
            }
        }
        "munmap" => {
            let a = args("munmap", "munmap ADDR [len=SIZE]", &["len"], rest)?;
            StmtKind::Munmap {
                span: a.only_span()?,
            }
        }
        "mremap" => {
            let a = args(
                "mremap",
                "mremap NAME new=NAME2 [size=SIZE] [dontunmap]",
                &["new", "size"],
                rest,
            )?;
            let (positional, flags) = a.bare(1, 1, &["dontunmap"])?;
            let Some(name) = positional.first() else {
                return problem(
                    end_col,
                    "usage: mremap NAME new=NAME2 [size=SIZE] [dontunmap]",
                );
            };
            StmtKind::Mremap {
                name: parse_identifier(*name, "region name")?,
                new_name: parse_identifier(a.required("new")?, "region name")?,
                size: a
                    .get("size")
                    .map(|t| parse_number(t, "size="))
                    .transpose()?,
                dontunmap: flags.contains(&"dontunmap"),
            }
        }
        "mprotect" => {
            let a = args(
                "mprotect",
                "mprotect ADDR [len=SIZE] prot=rw|r|none",
                &["len", "prot"],
                rest,
            )?;
            let span = a.only_span()?;
            StmtKind::Mprotect {
                span,
                prot: parse_keyword::<Prot>(a.required("prot")?, "prot")?,
            }
        }
        "madvise" => {
            let usage = "madvise ADDR [len=SIZE] dontneed";
            let a = args("madvise", usage, &["len"], rest)?;
            let (positional, flags) = a.bare(1, 1, &["dontneed"])?;
            let Some(addr) = positional.first() else {
                return problem(end_col, format!("usage: {usage}"));
            };
            if !flags.contains(&"dontneed") {
                return problem(
                    end_col,
                    format!("madvise needs the advice 'dontneed' (usage: {usage})"),
                );
            }
            StmtKind::MadviseDontneed {
                span: a.span(*addr)?,
            }
        }
        "cpu" | "gpu" => return parse_access(verb, rest, end_col),
        "prefetch" => {
            let a = args(
                "prefetch",
                "prefetch ADDR [len=SIZE] to=vram|ram [dev=K]",
                &["len", "to", "dev"],
                rest,
            )?;
            let span = a.only_span()?;
            StmtKind::Prefetch {
                span,
                to: parse_keyword::<Placement>(a.required("to")?, "to")?,
                dev: a.dev()?,
            }
        }
        "advise" => {
            let usage = "advise ADDR [len=SIZE] [preferred=vram|ram|devK] [atomic=device|global|cpu|default]";
            let a = args("advise", usage, &["len", "preferred", "atomic"], rest)?;
            let span = a.only_span()?;
            let preferred = a.get("preferred").map(parse_preferred).transpose()?;
            let atomic = a
                .get("atomic")
                .map(|t| parse_keyword::<AtomicMode>(t, "atomic"))
                .transpose()?;
            if preferred.is_none() && atomic.is_none() {
                return problem(
                    end_col,
                    format!("advise needs preferred= or atomic= (usage: {usage})"),
                );
            }
            StmtKind::Advise {
                span,
                preferred,
                atomic,
            }
        }
        "evict" => {
            let a = args(
                "evict",
                "evict [dev=K] [ADDR [len=SIZE]]",
                &["dev", "len"],
                rest,
            )?;
            let (positional, _) = a.bare(0, 1, &[])?;
            let span = match positional.first() {
                Some(addr) => Some(a.span(*addr)?),
                None => {
                    if let Some((key, _)) = a.opts.iter().find(|(k, _)| k.text == "len") {
                        return problem(key.col, "len= needs an address to start from");
                    }
                    None
                }
            };
            StmtKind::Evict {
                dev: a.dev()?,
                span,
            }
        }
        "remove_device" => {
            let a = args("remove_device", "remove_device dev=K", &["dev"], rest)?;
            a.bare(0, 0, &[])?;
            StmtKind::RemoveDevice {
                dev: parse_u32(a.required("dev")?, "dev=")?,
            }
        }
        "bind_bo" => {
            let a = args(
                "bind_bo",
                "bind_bo ADDR [len=SIZE] [dev=K]",
                &["len", "dev"],
                rest,
            )?;
            StmtKind::BindBo {
                span: a.only_span()?,
                dev: a.dev()?,
            }
        }
        "expect" => return parse_expect(verb, rest, end_col),
        other => {
            let message = if other.starts_with('{') {
                "only 'concurrent seed=N {' opens a block".to_owned()
            } else if other.starts_with('}') {
                "'}' must be alone on its line".to_owned()
            } else {
                let detail = hint(other, VERBS);
                let detail = if detail.is_empty() {
                    format!("expected one of {}", VERBS.join(", "))
                } else {
                    detail
                };
                format!("unknown statement {}: {detail}", quote(other))
            };
            return problem(verb.col, message);
        }
    };
    Ok(kind)
}

/// Parses `cpu read|write ...` and `gpu read|write|atomic ...`.
fn parse_access(unit: &Token<'_>, rest: &[Token<'_>], end_col: u32) -> Res<StmtKind> {
    let gpu = unit.text == "gpu";
    let accesses: &[&str] = if gpu {
        &["read", "write", "atomic"]
    } else {
        &["read", "write"]
    };
    let Some((access, rest)) = rest.split_first() else {
        return problem(
            end_col,
            format!("expected {} after '{}'", one_of(accesses), unit.text),
        );
    };
    let args = |verb, usage, keys: &[&str]| Args::new(verb, usage, keys, rest, end_col);
    match (gpu, access.text) {
        (false, "write") => {
            let a = args(
                "cpu write",
                "cpu write ADDR [len=SIZE] fill=BYTE|seed:N",
                &["len", "fill"],
            )?;
            let span = a.only_span()?;
            Ok(StmtKind::CpuWrite {
                span,
                fill: parse_fill(a.required("fill")?)?,
            })
        }
        (false, "read") => {
            let a = args(
                "cpu read",
                "cpu read ADDR [len=SIZE] [expect=BYTE|seed:N|u64:V]",
                &["len", "expect"],
            )?;
            let span = a.only_span()?;
            Ok(StmtKind::CpuRead {
                span,
                expect: a
                    .get("expect")
                    .map(|t| parse_pattern(t, "expect", true))
                    .transpose()?,
            })
        }
        (true, "write") => {
            let a = args(
                "gpu write",
                "gpu write ADDR [len=SIZE] fill=BYTE|seed:N [dev=K]",
                &["len", "fill", "dev"],
            )?;
            let span = a.only_span()?;
            Ok(StmtKind::GpuWrite {
                span,
                fill: parse_fill(a.required("fill")?)?,
                dev: a.dev()?,
            })
        }
        (true, "read") => {
            let a = args(
                "gpu read",
                "gpu read ADDR [len=SIZE] [expect=BYTE|seed:N|u64:V] [dev=K]",
                &["len", "expect", "dev"],
            )?;
            let span = a.only_span()?;
            Ok(StmtKind::GpuRead {
                span,
                expect: a
                    .get("expect")
                    .map(|t| parse_pattern(t, "expect", true))
                    .transpose()?,
                dev: a.dev()?,
            })
        }
        (true, "atomic") => {
            let a = args(
                "gpu atomic",
                "gpu atomic ADDR [count=N] [dev=K]",
                &["count", "dev"],
            )?;
            let addr = parse_address(a.one()?)?;
            Ok(StmtKind::GpuAtomic {
                addr,
                count: a
                    .get("count")
                    .map(|t| parse_number(t, "count="))
                    .transpose()?
                    .unwrap_or(1),
                dev: a.dev()?,
            })
        }
        (_, other) => problem(
            access.col,
            with_hint(
                format!(
                    "unknown {} access {} (expected {})",
                    unit.text,
                    quote(other),
                    one_of(accesses)
                ),
                &hint(other, accesses),
            ),
        ),
    }
}

/// Parses `expect residency|ranges|stat|chunk ...`.
fn parse_expect(verb: &Token<'_>, rest: &[Token<'_>], end_col: u32) -> Res<StmtKind> {
    const WHATS: &[&str] = &["residency", "ranges", "stat", "chunk"];
    let Some((what, rest)) = rest.split_first() else {
        return problem(
            end_col,
            format!("expected {} after '{}'", one_of(WHATS), verb.text),
        );
    };
    // The comparison forms are fixed word sequences; anything after them is an error.
    let no_more = |extra: Option<&Token<'_>>| match extra {
        Some(t) => problem(
            t.col,
            format!("unexpected {} at the end of the expectation", quote(t.text)),
        ),
        None => Ok(()),
    };
    let value = |tok: Option<&Token<'_>>, what: &str| match tok {
        Some(t) => parse_number(*t, what),
        None => problem(end_col, format!("expected {what}")),
    };
    match what.text {
        "residency" => {
            let a = Args::new(
                "expect residency",
                "expect residency ADDR [len=SIZE] in=vram|ram|mixed|none [dev=K]",
                &["len", "in", "dev"],
                rest,
                end_col,
            )?;
            let span = a.only_span()?;
            Ok(StmtKind::ExpectResidency {
                span,
                loc: parse_keyword::<Residency>(a.required("in")?, "in")?,
                dev: a.dev()?,
            })
        }
        "ranges" => {
            let op = parse_cmp_op(rest.first().copied(), end_col)?;
            let value = value(rest.get(1), "the number of ranges")?;
            no_more(rest.get(2))?;
            Ok(StmtKind::ExpectRanges { op, value })
        }
        "stat" => {
            let Some(name) = rest.first() else {
                return problem(
                    end_col,
                    "expected a statistic name (usage: expect stat NAME OP N)",
                );
            };
            if !STAT_NAMES.contains(&name.text) {
                let detail = hint(name.text, STAT_NAMES);
                let detail = if detail.is_empty() {
                    format!("expected one of {}", STAT_NAMES.join(", "))
                } else {
                    detail
                };
                return problem(
                    name.col,
                    format!("unknown statistic {}: {detail}", quote(name.text)),
                );
            }
            let op = parse_cmp_op(rest.get(1).copied(), end_col)?;
            let value = value(rest.get(2), "the statistic's value")?;
            no_more(rest.get(3))?;
            Ok(StmtKind::ExpectStat {
                name: name.text.to_owned(),
                op,
                value,
            })
        }
        "chunk" => {
            let Some(addr) = rest.first() else {
                return problem(
                    end_col,
                    "expected an address (usage: expect chunk ADDR == SIZE)",
                );
            };
            let addr = parse_address(*addr)?;
            let op_tok = rest.get(1).copied();
            if parse_cmp_op(op_tok, end_col)? != CmpOp::Eq {
                return problem(
                    op_tok.map_or(end_col, |t| t.col),
                    "expect chunk only compares with '=='",
                );
            }
            let size = value(rest.get(2), "the chunk size")?;
            no_more(rest.get(3))?;
            Ok(StmtKind::ExpectChunk { addr, size })
        }
        other => {
            let spacing = WHATS
                .iter()
                .any(|w| other.starts_with(w) && other.len() > w.len());
            let detail = if spacing {
                "put spaces around the operator, e.g. 'expect ranges == 1'".to_owned()
            } else {
                hint(other, WHATS)
            };
            problem(
                what.col,
                with_hint(
                    format!(
                        "unknown expectation {} (expected {})",
                        quote(other),
                        one_of(WHATS)
                    ),
                    &detail,
                ),
            )
        }
    }
}

/// Merges the keys of one `config` line into `config`.
fn parse_config(config: &mut Config, rest: &[Token<'_>], end_col: u32) -> Res<()> {
    let a = Args::new("config", "config KEY=VALUE...", Config::KEYS, rest, end_col)?;
    if let Some(word) = a.bare.first() {
        return problem(
            word.col,
            format!("expected key=value in config, found {}", quote(word.text)),
        );
    }
    if a.opts.is_empty() {
        return problem(
            end_col,
            format!(
                "config needs at least one key=value (keys: {})",
                Config::KEYS.join(", ")
            ),
        );
    }
    for (key, value) in &a.opts {
        let value = *value;
        let what = format!("{}=", key.text);
        match key.text {
            "page" => config.page = Some(parse_number(value, &what)?),
            "chunks" => {
                let mut chunks = Vec::new();
                let mut start = 0;
                let text = value.text;
                for (i, c) in text
                    .char_indices()
                    .chain(std::iter::once((text.len(), ',')))
                {
                    if c == ',' {
                        let item = value.slice(start, i);
                        if item.text.is_empty() {
                            return problem(item.col, "empty chunk size in chunks= list");
                        }
                        chunks.push(parse_number(item, "a chunk size")?);
                        start = i + 1;
                    }
                }
                config.chunks = Some(chunks);
            }
            "notifier" => config.notifier = Some(parse_number(value, &what)?),
            "vram" => config.vram = Some(parse_number(value, &what)?),
            "devices" => config.devices = Some(parse_u32(value, &what)?),
            "check_pages_threshold" => {
                config.check_pages_threshold = Some(parse_number(value, &what)?);
            }
            "migrate_min" => config.migrate_min = Some(parse_number(value, &what)?),
            "atomic_timeslice_ms" => config.atomic_timeslice_ms = Some(parse_number(value, &what)?),
            "seed" => config.seed = Some(parse_number(value, &what)?),
            "range_split" => config.range_split = Some(parse_on_off(value, "range_split")?),
            "owners" => config.owners = Some(parse_keyword::<Owners>(value, "owners")?),
            // Args::new only lets through the keys in Config::KEYS, all handled above.
            other => return problem(key.col, format!("unknown config key {}", quote(other))),
        }
    }
    Ok(())
}

/// An open `concurrent` block.
struct OpenBlock {
    line: u32,
    col: u32,
    seed: u64,
    body: Vec<Stmt>,
}

/// The line-by-line structure: config placement and `concurrent` blocks.
#[derive(Default)]
struct Parser {
    config: Config,
    stmts: Vec<Stmt>,
    /// The line of the first statement; `config` after it is an error.
    first_stmt_line: Option<u32>,
    block: Option<OpenBlock>,
}

impl Parser {
    /// Handles one line.
    fn line(&mut self, line_no: u32, raw: &str) -> Res<()> {
        let lexed = lex_line(raw);
        let Some(first) = lexed.tokens.first().copied() else {
            return match lexed.outcome {
                Some((_, arrow_col)) => {
                    problem(arrow_col, "an outcome needs a statement before '->'")
                }
                None => Ok(()), // blank or comment-only line
            };
        };
        let rest = lexed.tokens.get(1..).unwrap_or(&[]);
        let no_outcome = |what: &str| match lexed.outcome {
            Some((_, arrow_col)) => problem(arrow_col, format!("{what} takes no '->' outcome")),
            None => Ok(()),
        };
        match first.text {
            "config" => {
                no_outcome("config")?;
                if let Some(first_line) = self.first_stmt_line {
                    return problem(
                        first.col,
                        format!("config must come before the first statement (line {first_line})"),
                    );
                }
                parse_config(&mut self.config, rest, lexed.end_col)
            }
            "}" => {
                no_outcome("'}'")?;
                if let Some(extra) = rest.first() {
                    return problem(extra.col, "'}' must be alone on its line");
                }
                let Some(block) = self.block.take() else {
                    return problem(first.col, "'}' without an open concurrent block");
                };
                if block.body.is_empty() {
                    return problem(
                        first.col,
                        format!("empty concurrent block (opened at line {})", block.line),
                    );
                }
                self.stmts.push(Stmt {
                    line: block.line,
                    col: block.col,
                    kind: StmtKind::Concurrent {
                        seed: block.seed,
                        body: block.body,
                    },
                    outcome: Outcome::default(),
                });
                Ok(())
            }
            "concurrent" => {
                no_outcome("concurrent")?;
                if let Some(open) = &self.block {
                    return problem(
                        first.col,
                        format!(
                            "concurrent blocks cannot be nested (the block opened at line {} is still open)",
                            open.line
                        ),
                    );
                }
                let seed = parse_block_header(rest, lexed.end_col)?;
                self.first_stmt_line.get_or_insert(line_no);
                self.block = Some(OpenBlock {
                    line: line_no,
                    col: first.col,
                    seed,
                    body: Vec::new(),
                });
                Ok(())
            }
            _ => {
                let kind = parse_stmt(&lexed.tokens, lexed.end_col)?;
                let outcome = match lexed.outcome {
                    Some((tail, arrow_col)) => {
                        if kind.is_expectation() {
                            return problem(
                                arrow_col,
                                "expectations take no '->' outcome: they either hold or fail the scenario",
                            );
                        }
                        parse_outcome(tail, arrow_col)?
                    }
                    None => Outcome::default(),
                };
                if self.block.is_some() && matches!(kind, StmtKind::Process { .. }) {
                    return problem(
                        first.col,
                        "process cannot appear inside a concurrent block: it switches the process for the statements after it, it is not a thread",
                    );
                }
                self.first_stmt_line.get_or_insert(line_no);
                let stmt = Stmt {
                    line: line_no,
                    col: first.col,
                    kind,
                    outcome,
                };
                match &mut self.block {
                    Some(block) => block.body.push(stmt),
                    None => self.stmts.push(stmt),
                }
                Ok(())
            }
        }
    }

    /// Ends the file: an open block is an error at its opening line.
    fn finish(self) -> Result<Scenario, (u32, Problem)> {
        if let Some(block) = self.block {
            return Err((
                block.line,
                Problem {
                    col: block.col,
                    message: "concurrent block is never closed (expected a line with '}')".into(),
                },
            ));
        }
        Ok(Scenario {
            config: self.config,
            stmts: self.stmts,
        })
    }
}

/// Parses `seed=N {` after `concurrent`.
fn parse_block_header(rest: &[Token<'_>], end_col: u32) -> Res<u64> {
    let usage = "concurrent seed=N {";
    let Some((last, words)) = rest.split_last() else {
        return problem(end_col, format!("usage: {usage}"));
    };
    if last.text != "{" {
        let message = if last.text.ends_with('{') {
            "put a space before '{'".to_owned()
        } else {
            format!("expected '{{' at the end of the line (usage: {usage})")
        };
        let col = if last.text.ends_with('{') {
            last.col_at(last.text.len().saturating_sub(1))
        } else {
            end_col
        };
        return problem(col, message);
    }
    let a = Args::new("concurrent", usage, &["seed"], words, last.col)?;
    if let Some(word) = a.bare.first() {
        let message = if word.text == "{" {
            "'{' must end the line".to_owned()
        } else {
            format!("unexpected argument {} (usage: {usage})", quote(word.text))
        };
        return problem(word.col, message);
    }
    parse_number(a.required("seed")?, "seed=")
}
