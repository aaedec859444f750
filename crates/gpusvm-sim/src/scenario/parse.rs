//! The scenario parser: text in, [`Scenario`] or a positioned [`ParseError`] out.
//!
//! Parsing is line-oriented and happens in three layers:
//!
//! 1. **Lexing** (`lex_line`): strip the `\r` of a `\r\n` ending and the `#` comment, cut the
//!    line at the first `->` into the statement and its outcome, and split the statement at
//!    ASCII whitespace into `Token`s that remember their 1-based column (counted in
//!    characters, a tab counting as one).
//! 2. **Statements** (`parse_stmt`): the first word (two for `cpu`, `gpu` and `expect`)
//!    selects the verb. The remaining words are sorted by `Args` into `key=value` options
//!    (any order, each at most once, only the verb's keys) and bare words (the positional
//!    address or name, then flags such as `dontunmap`). Values are parsed by small functions
//!    (`parse_number`, `parse_address`, ...) that report the column of the exact offending
//!    character.
//! 3. **Structure** (`Parser`): `config` lines must precede every statement and are merged;
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

/// Edit distance counting a swap of adjacent characters as one edit (optimal string
/// alignment), for "did you mean" hints; only called on short words.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    // d[i * width + j] is the distance between a[..i] and b[..j].
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    let get = |d: &[usize], i: usize, j: usize| d.get(at(i, j)).copied().unwrap_or(usize::MAX / 2);
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            let value = if i == 0 || j == 0 {
                i.max(j)
            } else {
                let same = a.get(i - 1) == b.get(j - 1);
                let mut best = (get(&d, i - 1, j - 1) + usize::from(!same))
                    .min(get(&d, i - 1, j) + 1)
                    .min(get(&d, i, j - 1) + 1);
                let swapped =
                    i > 1 && j > 1 && a.get(i - 1) == b.get(j - 2) && a.get(i - 2) == b.get(j - 1);
                if swapped {
                    best = best.min(get(&d, i - 2, j - 2) + 1);
                }
                best
            };
            if let Some(cell) = d.get_mut(at(i, j)) {
                *cell = value;
            }
        }
    }
    get(&d, a.len(), b.len())
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
        // Allow about one slip per three letters, so short keys do not all look alike.
        Some((d, c)) if d <= (c.len() / 3).max(1) => format!("did you mean '{c}{suffix}'?"),
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

/// Appends `: detail` to `message` when `detail` is non-empty.
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

    /// Splits the token at every `sep`, keeping empty parts. Columns are tracked incrementally,
    /// so this stays linear on huge tokens.
    fn split(&self, sep: char) -> Vec<Token<'a>> {
        let mut parts = Vec::new();
        let (mut start, mut start_col, mut col) = (0, self.col, self.col);
        for (i, c) in self.text.char_indices() {
            col = col.saturating_add(1);
            if c == sep {
                parts.push(Token {
                    text: self.text.get(start..i).unwrap_or(""),
                    col: start_col,
                });
                start = i + c.len_utf8();
                start_col = col;
            }
        }
        parts.push(Token {
            text: self.text.get(start..).unwrap_or(""),
            col: start_col,
        });
        parts
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
    let end_col = tokens.last().map_or(1, Token::end_col);
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
            let message = if radix == 16 {
                format!("expected hex digits after '0x' in {}", quote(text))
            } else if c == '-' {
                format!("{what} cannot be negative")
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
            format!(
                "{value} is too large for {what} (the maximum is {})",
                u32::MAX
            ),
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
            "invalid {what} {}: it {why} (names match [A-Za-z_][A-Za-z0-9_]*)",
            quote(tok.text)
        ),
    )
}

/// Parses an address: `NAME`, `NAME+OFF+...` or an absolute number (also `+OFF`-able).
fn parse_address(tok: Token<'_>) -> Res<Address> {
    let mut parts = tok.split('+').into_iter();
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
        let detail = if tok.text.starts_with("seed=") || tok.text.starts_with("u64=") {
            "separate the kind and the number with ':', as in seed:1"
        } else {
            ""
        };
        return problem(
            tok.col,
            with_hint(
                format!(
                    "invalid {key}= value {} (expected {valid})",
                    quote(tok.text)
                ),
                detail,
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
    /// A piece of the outcome text.
    enum Piece<'a> {
        Word(Token<'a>),
        /// A `|`, at this column.
        Bar(u32),
    }
    let mut pieces = Vec::new();
    for word in tokenize(tail.text, tail.col) {
        for (i, part) in word.split('|').into_iter().enumerate() {
            if i > 0 {
                // The bar sits just before the part that follows it.
                pieces.push(Piece::Bar(part.col.saturating_sub(1)));
            }
            if !part.text.is_empty() {
                pieces.push(Piece::Word(part));
            }
        }
    }
    if pieces.is_empty() {
        return problem(
            arrow_col,
            "expected an outcome after '->' (ok, SEGV or an errno name such as EFAULT)",
        );
    }
    // The pieces must alternate: word, bar, word, ..., word.
    let mut alts: Vec<Expected> = Vec::new();
    let mut last_bar = None;
    for piece in &pieces {
        let want_word = alts.is_empty() || last_bar.is_some();
        match *piece {
            Piece::Word(word) if want_word => {
                let alt = parse_expected(word)?;
                if alts.contains(&alt) {
                    return problem(word.col, format!("outcome '{alt}' is listed twice"));
                }
                alts.push(alt);
                last_bar = None;
            }
            Piece::Word(word) => {
                return problem(
                    word.col,
                    format!("expected '|' between outcomes, found {}", quote(word.text)),
                );
            }
            Piece::Bar(col) if want_word => {
                return problem(col, "expected an outcome before '|'");
            }
            Piece::Bar(col) => last_bar = Some(col),
        }
    }
    if let Some(col) = last_bar {
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
    /// them mandatory; `what` describes them for messages) and `flags`. A word counts as a flag
    /// only once the mandatory positionals are filled, so a region may even be named like a
    /// flag.
    fn bare(
        &self,
        required: usize,
        max: usize,
        flags: &[&'static str],
        what: &str,
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
                format!("{} needs {what} (usage: {})", self.verb, self.usage),
            );
        }
        Ok((positional, found_flags))
    }

    /// The single mandatory positional argument, with no flags allowed.
    fn one(&self, what: &str) -> Res<Token<'a>> {
        let (positional, _) = self.bare(1, 1, &[], what)?;
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
        let addr = self.one("an address")?;
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
                name: parse_identifier(a.one("a process name")?, "process name")?,
            }
        }
        "fork" => {
            let a = args("fork", "fork CHILD", &[], rest)?;
            StmtKind::Fork {
                child: parse_identifier(a.one("a process name")?, "process name")?,
            }
        }
        "exit" => {
            args("exit", "exit", &[], rest)?.bare(0, 0, &[], "")?;
            StmtKind::Exit
        }
        "mmap" => {
            let a = args(
                "mmap",
                "mmap NAME size=SIZE [align=SIZE] [at=ADDR] [prot=rw|r|none] [kind=anon|shared|file|thp|hugetlb]",
                &["size", "align", "at", "prot", "kind"],
                rest,
            )?;
            let name = parse_identifier(a.one("a region name")?, "region name")?;
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
            let (positional, flags) = a.bare(1, 1, &["dontunmap"], "a region name")?;
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
            let (positional, flags) = a.bare(1, 1, &["dontneed"], "an address")?;
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
            let (positional, _) = a.bare(0, 1, &[], "an address")?;
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
            a.bare(0, 0, &[], "")?;
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
            let addr = parse_address(a.one("an address")?)?;
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
                for item in value.split(',') {
                    if item.text.is_empty() {
                        return problem(item.col, "empty chunk size in chunks= list");
                    }
                    chunks.push(parse_number(item, "a chunk size")?);
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
    let (words, brace) = match rest.iter().position(|t| t.text == "{") {
        Some(i) => match (rest.get(..i), rest.get(i), rest.get(i + 1)) {
            (_, _, Some(next)) => {
                return problem(
                    next.col,
                    "'{' must end the line: put each statement of the block on its own line",
                );
            }
            (Some(words), Some(brace), None) => (words, *brace),
            _ => return problem(end_col, format!("usage: {usage}")),
        },
        None => {
            if let Some(t) = rest.iter().find(|t| t.text.ends_with('{')) {
                let col = t.col_at(t.text.len().saturating_sub(1));
                return problem(col, "put a space before '{'");
            }
            return problem(
                end_col,
                format!("expected '{{' at the end of the line (usage: {usage})"),
            );
        }
    };
    let a = Args::new("concurrent", usage, &["seed"], words, brace.col)?;
    if let Some(word) = a.bare.first() {
        return problem(
            word.col,
            format!("unexpected argument {} (usage: {usage})", quote(word.text)),
        );
    }
    parse_number(a.required("seed")?, "seed=")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ast::{Address, Expected, Fill, Pattern};

    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    fn ok(text: &str) -> Scenario {
        parse("t.svm", text).unwrap_or_else(|e| panic!("{e}\n--- input ---\n{text}"))
    }

    fn err(text: &str) -> ParseError {
        match parse("t.svm", text) {
            Ok(s) => panic!("expected an error for {text:?}, parsed {s:?}"),
            Err(e) => e,
        }
    }

    /// The kind of the only statement in `line`.
    fn kind(line: &str) -> StmtKind {
        let scenario = ok(line);
        assert_eq!(scenario.stmts.len(), 1, "{line}");
        scenario.stmts.into_iter().next().map(|s| s.kind).unwrap()
    }

    fn named(name: &str, offset: u64) -> Address {
        Address::Named {
            name: name.to_owned(),
            offset,
        }
    }

    fn span(name: &str, offset: u64, len: Option<u64>) -> Span {
        Span {
            addr: named(name, offset),
            len,
        }
    }

    fn stmt(line: u32, col: u32, kind: StmtKind) -> Stmt {
        Stmt {
            line,
            col,
            kind,
            outcome: Outcome::default(),
        }
    }

    fn alts(alts: &[Expected]) -> Outcome {
        Outcome {
            alts: alts.to_vec(),
        }
    }

    /// Zeroes every position, so trees parsed from differently laid-out text compare equal.
    fn without_positions(mut scenario: Scenario) -> Scenario {
        fn strip(stmts: &mut [Stmt]) {
            for s in stmts {
                s.line = 0;
                s.col = 0;
                if let StmtKind::Concurrent { body, .. } = &mut s.kind {
                    strip(body);
                }
            }
        }
        strip(&mut scenario.stmts);
        scenario
    }

    /// Checks that printing `scenario` and parsing the result gives the same tree, and that
    /// printing is then stable.
    fn assert_round_trip(scenario: &Scenario) {
        let printed = scenario.to_string();
        let reparsed = parse("printed.svm", &printed).unwrap_or_else(|e| {
            panic!("printed scenario does not parse: {e}\n--- printed ---\n{printed}")
        });
        assert_eq!(
            without_positions(reparsed.clone()),
            without_positions(scenario.clone()),
            "round trip changed the tree\n--- printed ---\n{printed}"
        );
        assert_eq!(reparsed.to_string(), printed);
    }

    /// The example scenarios shipped with the brief, read at test time so the crate builds
    /// anywhere; skipped (with a note) when the directory is not there.
    fn example_files() -> Vec<(String, String)> {
        let candidates = [
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/scenarios"),
            std::path::PathBuf::from("/work/shared/scenarios"),
        ];
        let Some(dir) = candidates.iter().find(|d| d.is_dir()) else {
            eprintln!("note: shared/scenarios not found; example tests skipped");
            return Vec::new();
        };
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("read scenarios dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "svm"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let bytes = std::fs::read(&p).expect("read scenario");
                (name, String::from_utf8_lossy(&bytes).into_owned())
            })
            .collect();
        files.sort();
        assert!(
            files.len() >= 7,
            "expected the 7 example scenarios in {}",
            dir.display()
        );
        files
    }

    // The contents of 01-anon-read-write.svm and 07-race-munmap.svm, kept here so their exact
    // trees are checked even where the shared directory is absent.
    const EXAMPLE_01: &str = "\
# CPU writes, GPU reads the same bytes, GPU writes, CPU reads them back.
# hmm-tests anon_read / anon_write; IGT once-large-malloc.
config vram=64M
mmap A size=2M align=2M
cpu write A fill=seed:1
gpu read A expect=seed:1
expect chunk A == 2M
expect ranges == 1
gpu write A fill=seed:2
cpu read A expect=seed:2
expect stat gpu_faults >= 1
";

    const EXAMPLE_07: &str = "\
# A GPU write races a munmap of half the buffer; whatever the order, the kept half is intact.
config vram=64M
mmap A size=2M align=2M
cpu write A fill=9
concurrent seed=1 {
  gpu write A len=2M fill=seed:4 -> ok|EFAULT|ENOENT
  munmap A+1M len=1M
}
gpu read A len=1M
cpu read A len=4K
";

    #[test]
    fn every_example_file_parses_and_round_trips() {
        for (name, text) in example_files() {
            let scenario =
                parse(&name, &text).unwrap_or_else(|e| panic!("example {name} fails: {e}"));
            assert!(!scenario.stmts.is_empty(), "{name} has statements");
            assert_round_trip(&scenario);
        }
    }

    #[test]
    fn example_files_have_the_expected_shape() {
        for (name, text) in example_files() {
            let scenario = parse(&name, &text).unwrap();
            let kinds: Vec<&str> = scenario.stmts.iter().map(|s| s.kind.verb()).collect();
            match name.as_str() {
                "02-read-only-vma.svm" => {
                    let write = &scenario.stmts[4];
                    assert_eq!(write.line, 6);
                    assert_eq!(write.outcome, alts(&[Expected::Errno(Errno::EPERM)]));
                }
                "03-partial-munmap.svm" => {
                    let last = scenario.stmts.last().unwrap();
                    assert_eq!(last.outcome, alts(&[Expected::Segv]));
                    assert!(scenario.stmts.iter().any(|s| s.kind
                        == StmtKind::CpuRead {
                            span: span("A", M + 4 * K, Some(4 * K)),
                            expect: Some(Pattern::Byte(5)),
                        }));
                }
                "05-gpu-atomics.svm" => {
                    assert_eq!(scenario.config.atomic_timeslice_ms, Some(5));
                    assert_eq!(
                        scenario.stmts[2].kind,
                        StmtKind::GpuAtomic {
                            addr: named("A", 0),
                            count: 100,
                            dev: None
                        }
                    );
                    assert_eq!(
                        scenario.stmts[3].kind,
                        StmtKind::CpuRead {
                            span: span("A", 0, Some(8)),
                            expect: Some(Pattern::U64(100)),
                        }
                    );
                }
                "06-eviction.svm" => {
                    assert_eq!(scenario.config.vram, Some(8 * M));
                    assert_eq!(kinds.iter().filter(|k| **k == "mmap").count(), 3);
                }
                "07-race-munmap.svm" => {
                    assert!(kinds.contains(&"concurrent"));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn example_01_tree() {
        let scenario = ok(EXAMPLE_01);
        assert_eq!(
            scenario.config,
            Config {
                vram: Some(64 * M),
                ..Config::default()
            }
        );
        let expected = vec![
            stmt(
                4,
                1,
                StmtKind::Mmap {
                    name: "A".into(),
                    size: 2 * M,
                    align: Some(2 * M),
                    at: None,
                    prot: Prot::Rw,
                    kind: MapKind::Anon,
                },
            ),
            stmt(
                5,
                1,
                StmtKind::CpuWrite {
                    span: span("A", 0, None),
                    fill: Fill::Seed(1),
                },
            ),
            stmt(
                6,
                1,
                StmtKind::GpuRead {
                    span: span("A", 0, None),
                    expect: Some(Pattern::Seed(1)),
                    dev: None,
                },
            ),
            stmt(
                7,
                1,
                StmtKind::ExpectChunk {
                    addr: named("A", 0),
                    size: 2 * M,
                },
            ),
            stmt(
                8,
                1,
                StmtKind::ExpectRanges {
                    op: CmpOp::Eq,
                    value: 1,
                },
            ),
            stmt(
                9,
                1,
                StmtKind::GpuWrite {
                    span: span("A", 0, None),
                    fill: Fill::Seed(2),
                    dev: None,
                },
            ),
            stmt(
                10,
                1,
                StmtKind::CpuRead {
                    span: span("A", 0, None),
                    expect: Some(Pattern::Seed(2)),
                },
            ),
            stmt(
                11,
                1,
                StmtKind::ExpectStat {
                    name: "gpu_faults".into(),
                    op: CmpOp::Ge,
                    value: 1,
                },
            ),
        ];
        assert_eq!(scenario.stmts, expected);
    }

    #[test]
    fn example_07_tree_with_concurrent_block() {
        let scenario = ok(EXAMPLE_07);
        assert_eq!(scenario.stmts.len(), 5);
        let block = &scenario.stmts[2];
        assert_eq!((block.line, block.col), (5, 1));
        assert!(block.outcome.is_default());
        let StmtKind::Concurrent { seed, body } = &block.kind else {
            panic!("expected a concurrent block, got {block:?}");
        };
        assert_eq!(*seed, 1);
        assert_eq!(
            body,
            &vec![
                Stmt {
                    line: 6,
                    col: 3,
                    kind: StmtKind::GpuWrite {
                        span: span("A", 0, Some(2 * M)),
                        fill: Fill::Seed(4),
                        dev: None,
                    },
                    outcome: alts(&[
                        Expected::Ok,
                        Expected::Errno(Errno::EFAULT),
                        Expected::Errno(Errno::ENOENT),
                    ]),
                },
                stmt(
                    7,
                    3,
                    StmtKind::Munmap {
                        span: span("A", M, Some(M)),
                    },
                ),
            ]
        );
        assert_eq!(
            scenario.stmts[3],
            stmt(
                9,
                1,
                StmtKind::GpuRead {
                    span: span("A", 0, Some(M)),
                    expect: None,
                    dev: None,
                }
            )
        );
        assert_round_trip(&scenario);
    }

    #[test]
    fn every_statement_form_of_the_format() {
        use StmtKind as S;
        let mmap = |name: &str, size, align, at, prot, kind| S::Mmap {
            name: name.into(),
            size,
            align,
            at,
            prot,
            kind,
        };
        let cases: Vec<(&str, StmtKind)> = vec![
            ("process p1", S::Process { name: "p1".into() }),
            (
                "fork child_2",
                S::Fork {
                    child: "child_2".into(),
                },
            ),
            ("exit", S::Exit),
            (
                "mmap A size=2M",
                mmap("A", 2 * M, None, None, Prot::Rw, MapKind::Anon),
            ),
            (
                "mmap B size=64K align=64K at=0x7f0000000000 prot=r kind=thp",
                mmap(
                    "B",
                    64 * K,
                    Some(64 * K),
                    Some(Address::Absolute(0x7f00_0000_0000)),
                    Prot::R,
                    MapKind::Thp,
                ),
            ),
            (
                "mmap _c kind=hugetlb prot=none at=B+4K size=4K",
                mmap(
                    "_c",
                    4 * K,
                    None,
                    Some(named("B", 4 * K)),
                    Prot::None,
                    MapKind::Hugetlb,
                ),
            ),
            (
                "mmap D size=1G kind=shared prot=rw",
                mmap("D", G, None, None, Prot::Rw, MapKind::Shared),
            ),
            (
                "mmap E size=8K kind=file",
                mmap("E", 8 * K, None, None, Prot::Rw, MapKind::File),
            ),
            (
                "mmap F size=4K kind=anon",
                mmap("F", 4 * K, None, None, Prot::Rw, MapKind::Anon),
            ),
            (
                "munmap A",
                S::Munmap {
                    span: span("A", 0, None),
                },
            ),
            (
                "munmap A+1M len=1M",
                S::Munmap {
                    span: span("A", M, Some(M)),
                },
            ),
            (
                "mremap A new=B",
                S::Mremap {
                    name: "A".into(),
                    new_name: "B".into(),
                    size: None,
                    dontunmap: false,
                },
            ),
            (
                "mremap A new=B size=4M dontunmap",
                S::Mremap {
                    name: "A".into(),
                    new_name: "B".into(),
                    size: Some(4 * M),
                    dontunmap: true,
                },
            ),
            (
                "mremap A dontunmap new=B",
                S::Mremap {
                    name: "A".into(),
                    new_name: "B".into(),
                    size: None,
                    dontunmap: true,
                },
            ),
            (
                "mprotect A prot=r",
                S::Mprotect {
                    span: span("A", 0, None),
                    prot: Prot::R,
                },
            ),
            (
                "mprotect A len=4K prot=none",
                S::Mprotect {
                    span: span("A", 0, Some(4 * K)),
                    prot: Prot::None,
                },
            ),
            (
                "madvise A dontneed",
                S::MadviseDontneed {
                    span: span("A", 0, None),
                },
            ),
            (
                "madvise A+4K len=8K dontneed",
                S::MadviseDontneed {
                    span: span("A", 4 * K, Some(8 * K)),
                },
            ),
            (
                "madvise A dontneed len=8K",
                S::MadviseDontneed {
                    span: span("A", 0, Some(8 * K)),
                },
            ),
            (
                "cpu write A fill=7",
                S::CpuWrite {
                    span: span("A", 0, None),
                    fill: Fill::Byte(7),
                },
            ),
            (
                "cpu write A len=4K fill=seed:1",
                S::CpuWrite {
                    span: span("A", 0, Some(4 * K)),
                    fill: Fill::Seed(1),
                },
            ),
            (
                "cpu write A fill=0xff len=1",
                S::CpuWrite {
                    span: span("A", 0, Some(1)),
                    fill: Fill::Byte(255),
                },
            ),
            (
                "cpu read A",
                S::CpuRead {
                    span: span("A", 0, None),
                    expect: None,
                },
            ),
            (
                "cpu read  A expect=7",
                S::CpuRead {
                    span: span("A", 0, None),
                    expect: Some(Pattern::Byte(7)),
                },
            ),
            (
                "cpu read A expect=seed:0x10",
                S::CpuRead {
                    span: span("A", 0, None),
                    expect: Some(Pattern::Seed(16)),
                },
            ),
            (
                "cpu read A len=8 expect=u64:101",
                S::CpuRead {
                    span: span("A", 0, Some(8)),
                    expect: Some(Pattern::U64(101)),
                },
            ),
            (
                "gpu write A fill=seed:2 dev=1",
                S::GpuWrite {
                    span: span("A", 0, None),
                    fill: Fill::Seed(2),
                    dev: Some(1),
                },
            ),
            (
                "gpu write A len=4K fill=1",
                S::GpuWrite {
                    span: span("A", 0, Some(4 * K)),
                    fill: Fill::Byte(1),
                    dev: None,
                },
            ),
            (
                "gpu read A",
                S::GpuRead {
                    span: span("A", 0, None),
                    expect: None,
                    dev: None,
                },
            ),
            (
                "gpu read  A len=1M expect=seed:3 dev=0",
                S::GpuRead {
                    span: span("A", 0, Some(M)),
                    expect: Some(Pattern::Seed(3)),
                    dev: Some(0),
                },
            ),
            (
                "gpu read A len=8 expect=u64:0xffffffffffffffff",
                S::GpuRead {
                    span: span("A", 0, Some(8)),
                    expect: Some(Pattern::U64(u64::MAX)),
                    dev: None,
                },
            ),
            (
                "gpu atomic A",
                S::GpuAtomic {
                    addr: named("A", 0),
                    count: 1,
                    dev: None,
                },
            ),
            (
                "gpu atomic A+8 count=100 dev=2",
                S::GpuAtomic {
                    addr: named("A", 8),
                    count: 100,
                    dev: Some(2),
                },
            ),
            (
                "prefetch A to=vram",
                S::Prefetch {
                    span: span("A", 0, None),
                    to: Placement::Vram,
                    dev: None,
                },
            ),
            (
                "prefetch A len=2M to=ram dev=1",
                S::Prefetch {
                    span: span("A", 0, Some(2 * M)),
                    to: Placement::Ram,
                    dev: Some(1),
                },
            ),
            (
                "advise A preferred=vram",
                S::Advise {
                    span: span("A", 0, None),
                    preferred: Some(Preferred::Vram),
                    atomic: None,
                },
            ),
            (
                "advise A preferred=ram atomic=cpu",
                S::Advise {
                    span: span("A", 0, None),
                    preferred: Some(Preferred::Ram),
                    atomic: Some(AtomicMode::Cpu),
                },
            ),
            (
                "advise A len=2M preferred=dev1 atomic=device",
                S::Advise {
                    span: span("A", 0, Some(2 * M)),
                    preferred: Some(Preferred::Dev(1)),
                    atomic: Some(AtomicMode::Device),
                },
            ),
            (
                "advise A atomic=global",
                S::Advise {
                    span: span("A", 0, None),
                    preferred: None,
                    atomic: Some(AtomicMode::Global),
                },
            ),
            (
                "advise A atomic=default",
                S::Advise {
                    span: span("A", 0, None),
                    preferred: None,
                    atomic: Some(AtomicMode::Default),
                },
            ),
            (
                "evict",
                S::Evict {
                    dev: None,
                    span: None,
                },
            ),
            (
                "evict dev=0",
                S::Evict {
                    dev: Some(0),
                    span: None,
                },
            ),
            (
                "evict A",
                S::Evict {
                    dev: None,
                    span: Some(span("A", 0, None)),
                },
            ),
            (
                "evict dev=1 A len=2M",
                S::Evict {
                    dev: Some(1),
                    span: Some(span("A", 0, Some(2 * M))),
                },
            ),
            ("remove_device dev=1", S::RemoveDevice { dev: 1 }),
            (
                "bind_bo A len=64K",
                S::BindBo {
                    span: span("A", 0, Some(64 * K)),
                    dev: None,
                },
            ),
            (
                "bind_bo A dev=1",
                S::BindBo {
                    span: span("A", 0, None),
                    dev: Some(1),
                },
            ),
            (
                "expect residency A in=vram",
                S::ExpectResidency {
                    span: span("A", 0, None),
                    loc: Residency::Vram,
                    dev: None,
                },
            ),
            (
                "expect residency A len=2M in=ram dev=1",
                S::ExpectResidency {
                    span: span("A", 0, Some(2 * M)),
                    loc: Residency::Ram,
                    dev: Some(1),
                },
            ),
            (
                "expect residency A in=mixed",
                S::ExpectResidency {
                    span: span("A", 0, None),
                    loc: Residency::Mixed,
                    dev: None,
                },
            ),
            (
                "expect residency A+2M in=none",
                S::ExpectResidency {
                    span: span("A", 2 * M, None),
                    loc: Residency::None,
                    dev: None,
                },
            ),
            (
                "expect ranges == 1",
                S::ExpectRanges {
                    op: CmpOp::Eq,
                    value: 1,
                },
            ),
            (
                "expect ranges != 0",
                S::ExpectRanges {
                    op: CmpOp::Ne,
                    value: 0,
                },
            ),
            (
                "expect ranges < 3",
                S::ExpectRanges {
                    op: CmpOp::Lt,
                    value: 3,
                },
            ),
            (
                "expect ranges <= 3",
                S::ExpectRanges {
                    op: CmpOp::Le,
                    value: 3,
                },
            ),
            (
                "expect ranges > 0x10",
                S::ExpectRanges {
                    op: CmpOp::Gt,
                    value: 16,
                },
            ),
            (
                "expect ranges >= 2",
                S::ExpectRanges {
                    op: CmpOp::Ge,
                    value: 2,
                },
            ),
            (
                "expect stat gpu_faults >= 1",
                S::ExpectStat {
                    name: "gpu_faults".into(),
                    op: CmpOp::Ge,
                    value: 1,
                },
            ),
            (
                "expect stat bytes_to_vram == 2M",
                S::ExpectStat {
                    name: "bytes_to_vram".into(),
                    op: CmpOp::Eq,
                    value: 2 * M,
                },
            ),
            (
                "expect chunk A == 2M",
                S::ExpectChunk {
                    addr: named("A", 0),
                    size: 2 * M,
                },
            ),
            (
                "expect chunk A+1M+4K == 64K",
                S::ExpectChunk {
                    addr: named("A", M + 4 * K),
                    size: 64 * K,
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(kind(line), expected, "{line}");
            // Each form also prints back to something that parses to the same tree.
            assert_eq!(kind(&expected.to_string()), expected, "{line}");
        }
    }

    #[test]
    fn every_stat_name_is_accepted() {
        for name in STAT_NAMES {
            let line = format!("expect stat {name} >= 0");
            assert_eq!(
                kind(&line),
                StmtKind::ExpectStat {
                    name: (*name).to_owned(),
                    op: CmpOp::Ge,
                    value: 0
                }
            );
        }
    }

    fn number(text: &str) -> Result<u64, String> {
        parse_number(Token { text, col: 1 }, "n").map_err(|p| p.message)
    }

    #[test]
    fn numbers() {
        assert_eq!(number("0"), Ok(0));
        assert_eq!(number("4096"), Ok(4096));
        assert_eq!(number("007"), Ok(7));
        assert_eq!(number("0x1000"), Ok(0x1000));
        assert_eq!(number("0xdeadBEEF"), Ok(0xdead_beef));
        assert_eq!(number("64K"), Ok(65536));
        assert_eq!(number("2M"), Ok(2 * M));
        assert_eq!(number("3G"), Ok(3 * G));
        assert_eq!(number("0x10K"), Ok(16 * K));
        assert_eq!(number("0xBG"), Ok(11 * G));
        assert_eq!(number("0K"), Ok(0));
        assert_eq!(number("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(number("0xffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(number("17179869183G"), Ok(((1 << 34) - 1) * G));
        assert_eq!(number("0x00000000000000000000001"), Ok(1));
    }

    #[test]
    fn number_errors() {
        let too_large = |text: &str| {
            let message = number(text).unwrap_err();
            assert!(message.contains("too large"), "{text}: {message}");
        };
        too_large("18446744073709551616");
        too_large("99999999999999999999999999999");
        too_large("0x10000000000000000");
        too_large("17179869184G");
        too_large("18014398509481984K");
        too_large("17592186044416M");

        let fails = |text: &str, needle: &str| {
            let message = number(text).unwrap_err();
            assert!(message.contains(needle), "{text}: {message}");
        };
        fails("", "expected a number");
        fails("x", "expected a number");
        fails("-1", "cannot be negative");
        fails("0x", "expected hex digits");
        fails("0xK", "expected hex digits");
        fails("0X10", "lowercase '0x'");
        fails("64k", "uppercase");
        fails("4KB", "unexpected text after the suffix");
        fails("4T", "invalid character 'T'");
        fails("1_000", "invalid character '_'");
        fails("1.5M", "invalid character '.'");
        fails("K", "expected a number");
        fails("१२", "expected a number"); // Non-ASCII digits are not digits here.
    }

    #[test]
    fn number_error_columns_point_at_the_bad_character() {
        let e = err("mmap A size=64k");
        assert_eq!((e.line, e.col), (1, 15));
        let e = err("mmap A size=12x4");
        assert_eq!((e.line, e.col), (1, 15));
        let e = err("mmap A size=4KB");
        assert_eq!((e.line, e.col), (1, 15));
    }

    #[test]
    fn addresses_sum_their_offsets() {
        let addr = |text: &str| parse_address(Token { text, col: 1 }).map_err(|p| p.message);
        assert_eq!(addr("A"), Ok(named("A", 0)));
        assert_eq!(addr("A+4K"), Ok(named("A", 4 * K)));
        assert_eq!(addr("A+1M+4K"), Ok(named("A", M + 4 * K)));
        assert_eq!(addr("A+1+2+3+0x4"), Ok(named("A", 10)));
        assert_eq!(addr("buf_1+0"), Ok(named("buf_1", 0)));
        assert_eq!(addr("_x"), Ok(named("_x", 0)));
        assert_eq!(
            addr("0x7f0000000000"),
            Ok(Address::Absolute(0x7f00_0000_0000))
        );
        assert_eq!(addr("4096"), Ok(Address::Absolute(4096)));
        assert_eq!(addr("0x1000+4K"), Ok(Address::Absolute(0x2000)));
        assert_eq!(addr("A+18446744073709551615"), Ok(named("A", u64::MAX)));
        assert!(addr("A+18446744073709551615+1")
            .unwrap_err()
            .contains("overflow"));
        assert!(addr("0xffffffffffffffff+1")
            .unwrap_err()
            .contains("overflow"));
        assert!(addr("A+").unwrap_err().contains("expected an offset"));
        assert!(addr("+4K").unwrap_err().contains("before '+'"));
        assert!(addr("A++4K").unwrap_err().contains("expected an offset"));
        assert!(addr("A+B").unwrap_err().contains("numeric offset"));
        assert!(addr("1A").unwrap_err().contains("invalid character"));
        assert!(addr("A-4K").unwrap_err().contains("contains '-'"));
        assert!(addr("Ä").unwrap_err().contains("contains 'Ä'"));
    }

    #[test]
    fn outcomes_and_alternatives() {
        let outcome = |line: &str| ok(line).stmts.remove(0).outcome;
        assert_eq!(outcome("munmap A"), Outcome::default());
        assert_eq!(outcome("munmap A -> ok"), Outcome::default());
        assert_eq!(outcome("munmap A->ok"), Outcome::default());
        assert_eq!(
            outcome("munmap A -> EINVAL"),
            alts(&[Expected::Errno(Errno::EINVAL)])
        );
        assert_eq!(outcome("cpu read A -> SEGV"), alts(&[Expected::Segv]));
        assert_eq!(
            outcome("gpu write A fill=1 -> ok|EFAULT|ENOENT"),
            alts(&[
                Expected::Ok,
                Expected::Errno(Errno::EFAULT),
                Expected::Errno(Errno::ENOENT)
            ])
        );
        assert_eq!(
            outcome("gpu write A fill=1 ->  EBUSY | ok   # spaces around '|' are fine"),
            alts(&[Expected::Errno(Errno::EBUSY), Expected::Ok])
        );
        for errno in Errno::ALL {
            let line = format!("bind_bo A -> {}", errno.name());
            let o = outcome(&line);
            assert_eq!(o, alts(&[Expected::Errno(*errno)]));
            assert!(o.allows_errno(errno.errno()));
            assert!(!o.allows_ok());
        }
        let o = outcome("cpu read A -> SEGV|ok");
        assert!(o.allows_segv() && o.allows_ok() && !o.allows_errno(14));
        for (name, value) in [
            ("EPERM", 1),
            ("ENOENT", 2),
            ("EFAULT", 14),
            ("EBUSY", 16),
            ("EACCES", 13),
            ("ENODEV", 19),
            ("EINVAL", 22),
        ] {
            assert!(
                outcome(&format!("exit -> {name}")).allows_errno(value),
                "{name}"
            );
        }
    }

    #[test]
    fn config_keys_merge_and_later_lines_override() {
        let scenario = ok("\
config page=4K chunks=2M,64K,4K notifier=512M vram=256M devices=1 check_pages_threshold=64K
config migrate_min=64K atomic_timeslice_ms=5 seed=1 range_split=on
config owners=separate vram=1G
config range_split=off devices=2
mmap A size=4K
");
        assert_eq!(
            scenario.config,
            Config {
                page: Some(4 * K),
                chunks: Some(vec![2 * M, 64 * K, 4 * K]),
                notifier: Some(512 * M),
                vram: Some(G),
                devices: Some(2),
                check_pages_threshold: Some(64 * K),
                migrate_min: Some(64 * K),
                atomic_timeslice_ms: Some(5),
                seed: Some(1),
                range_split: Some(false),
                owners: Some(Owners::Separate),
            }
        );
        assert_eq!(scenario.stmts.len(), 1);
        assert_eq!(scenario.stmts[0].line, 5);
        assert_round_trip(&scenario);
        assert_eq!(
            ok("config owners=shared").config.owners,
            Some(Owners::Shared)
        );
        assert_eq!(ok("config chunks=4K").config.chunks, Some(vec![4 * K]));
        assert!(ok("# nothing\n\n").config.is_empty());
    }

    #[test]
    fn config_after_a_statement_is_an_error() {
        let e = err("config vram=64M\nmmap A size=4K\n\nconfig seed=1\n");
        assert_eq!((e.line, e.col), (4, 1));
        assert_eq!(
            e.message,
            "config must come before the first statement (line 2)"
        );
        let e = err("process p0\n  config seed=1");
        assert_eq!((e.line, e.col), (2, 3));
        // A concurrent block is a statement too, and config may not hide inside one.
        let e = err("concurrent seed=1 {\nconfig seed=2\n}");
        assert_eq!((e.line, e.col), (2, 1));
    }

    #[test]
    fn concurrent_block_errors() {
        let e = err("mmap A size=4K\nconcurrent seed=1 {\n  concurrent seed=2 {\n  }\n}\n");
        assert_eq!((e.line, e.col), (3, 3));
        assert!(e.message.contains("cannot be nested"), "{e}");
        assert!(e.message.contains("line 2"), "{e}");

        let e = err("mmap A size=4K\n  concurrent seed=1 {\n  cpu read A\n\n# end\n");
        assert_eq!((e.line, e.col), (2, 3));
        assert!(e.message.contains("never closed"), "{e}");

        let e = err("mmap A size=4K\n}\n");
        assert_eq!((e.line, e.col), (2, 1));
        assert!(
            e.message.contains("without an open concurrent block"),
            "{e}"
        );

        let e = err("concurrent seed=1 {\n}\n");
        assert_eq!((e.line, e.col), (2, 1));
        assert!(e.message.contains("empty concurrent block"), "{e}");

        let e = err("concurrent seed=1 {\n  process p1\n}\n");
        assert_eq!((e.line, e.col), (2, 3));
        assert!(e.message.contains("process cannot appear inside"), "{e}");

        let e = err("concurrent seed=1 {\n  exit\n} x\n");
        assert_eq!((e.line, e.col), (3, 3));

        let e = err("concurrent seed=1 {\n  exit\n} -> ok\n");
        assert_eq!((e.line, e.col), (3, 3));

        let e = err("concurrent seed=1 { exit\n}\n");
        assert_eq!((e.line, e.col), (1, 21));
        assert!(e.message.contains("'{' must end the line"), "{e}");
    }

    #[test]
    fn concurrent_statements_keep_their_own_outcomes() {
        let scenario = ok("\
concurrent seed=0x2A {
\tgpu write A len=2M fill=1 -> ok|EFAULT
  munmap A+1M len=1M -> EINVAL|ok
  exit
  fork child -> ENOMEM
}
");
        let StmtKind::Concurrent { seed, body } = &scenario.stmts[0].kind else {
            panic!("not a block");
        };
        assert_eq!(*seed, 42);
        let outcomes: Vec<String> = body.iter().map(|s| s.outcome.to_string()).collect();
        assert_eq!(outcomes, ["ok|EFAULT", "EINVAL|ok", "ok", "ENOMEM"]);
        assert_eq!((body[0].line, body[0].col), (2, 2));
        assert_round_trip(&scenario);
    }

    #[test]
    fn crlf_tabs_comments_and_bom() {
        let unix = ok(EXAMPLE_07);
        let windows = EXAMPLE_07.replace('\n', "\r\n").replace("  ", "\t");
        assert_eq!(
            without_positions(ok(&windows)),
            without_positions(unix.clone())
        );
        let messy = format!(
            "\u{feff}{}",
            EXAMPLE_07
                .replace(' ', " \t ")
                .replace('\n', "   # trailing comment -> EFAULT\r\n\r\n")
        );
        assert_eq!(without_positions(ok(&messy)), without_positions(unix));
        // The BOM does not shift columns; tabs count as one column.
        let e = err("\u{feff}\tmunmap A lenn=1M\r\n");
        assert_eq!((e.line, e.col), (1, 11));
        // A comment may follow anything, and a '#' line is skipped entirely.
        assert_eq!(
            kind("munmap A len=1M#comment"),
            StmtKind::Munmap {
                span: span("A", 0, Some(M))
            }
        );
        assert!(ok("#mmap A size=bogus\n   # -> EFAULT").stmts.is_empty());
        assert!(ok("").stmts.is_empty());
        assert!(ok("\r\n\r\n\t\n").stmts.is_empty());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // prot= is parsed before kind=, so the error is at prot's value, after the 'ü'.
        let e = err("mmap A size=4K kind=ü prot=zz");
        assert_eq!((e.line, e.col), (1, 28));
        let e = err("mmap AÖ size=4K");
        assert_eq!((e.line, e.col), (1, 7));
        assert!(e.message.contains("contains 'Ö'"), "{e}");
    }

    #[test]
    fn parse_error_display() {
        let e = err("mmap A size=2M\nmunmap A lenn=1M\n");
        assert_eq!(e.file, "t.svm");
        assert_eq!(
            e.to_string(),
            "t.svm:2:10: unknown key 'lenn' for munmap (expected len=)"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().starts_with("t.svm:2:10: "));
    }

    /// Malformed inputs with the exact position and a part of the message they must produce.
    #[test]
    fn malformed_inputs_report_line_column_and_cause() {
        let cases: &[(&str, u32, u32, &str)] = &[
            (
                "mmap A size=2M\nmunmap A lenn=1M",
                2,
                10,
                "unknown key 'lenn' for munmap (expected len=)",
            ),
            (
                "MMAP A size=4K",
                1,
                1,
                "keywords are lowercase: did you mean 'mmap'?",
            ),
            ("mmpa A size=4K", 1, 1, "did you mean 'mmap'?"),
            (
                "frobnicate",
                1,
                1,
                "unknown statement 'frobnicate': expected one of config, process",
            ),
            ("mmap A size=99999999999999999999", 1, 13, "too large"),
            ("mmap A size=17179869184G", 1, 13, "too large"),
            ("mmap 1A size=4K", 1, 6, "must not start with a digit"),
            (
                "mmap A size=4K size=8K",
                1,
                16,
                "duplicate key 'size=' (first given at column 8)",
            ),
            (
                "mmap A sise=4K",
                1,
                8,
                "unknown key 'sise' for mmap: did you mean 'size='?",
            ),
            (
                "mmap A SIZE=4K",
                1,
                8,
                "keywords are lowercase: did you mean 'size='?",
            ),
            (
                "mmap A",
                1,
                7,
                "mmap needs size= (usage: mmap NAME size=SIZE",
            ),
            ("mmap size=4K", 1, 13, "mmap needs a region name (usage"),
            ("mmap A B size=4K", 1, 8, "unexpected argument 'B' for mmap"),
            ("mmap A size=", 1, 13, "missing value after 'size='"),
            ("mmap A =4K", 1, 8, "missing key before '='"),
            (
                "mmap A size=4K prot=RW",
                1,
                21,
                "keywords are lowercase: did you mean 'rw'?",
            ),
            (
                "mmap A size=4K kind=huge",
                1,
                21,
                "invalid kind= value 'huge' (expected anon, shared, file, thp or hugetlb)",
            ),
            (
                "mmap A size=4K {",
                1,
                16,
                "only 'concurrent seed=N {' opens a block",
            ),
            (
                "config foo=1",
                1,
                8,
                "unknown key 'foo' for config (expected one of page=, chunks=",
            ),
            (
                "config vram",
                1,
                8,
                "expected key=value in config, found 'vram'",
            ),
            ("config", 1, 7, "config needs at least one key=value"),
            (
                "config range_split=yes",
                1,
                20,
                "invalid range_split= value 'yes' (expected on or off)",
            ),
            ("config owners=own", 1, 15, "expected shared or separate"),
            ("config chunks=2M,,4K", 1, 18, "empty chunk size"),
            ("config chunks=2M,4X", 1, 19, "invalid character 'X'"),
            (
                "config devices=5000000000",
                1,
                16,
                "5000000000 is too large for devices= (the maximum is 4294967295)",
            ),
            (
                "config vram=64M -> ok",
                1,
                17,
                "config takes no '->' outcome",
            ),
            (
                "cpu write A fill=256",
                1,
                18,
                "byte value 256 for fill is out of range (0 to 255)",
            ),
            ("cpu write A fill=1K", 1, 18, "out of range"),
            ("cpu write A", 1, 12, "cpu write needs fill="),
            ("cpu write A fill=u64:1", 1, 18, "u64:V only checks reads"),
            ("cpu write A fill=sead:1", 1, 18, "did you mean 'seed'?"),
            (
                "cpu write A fill=seed:",
                1,
                23,
                "expected a number for the seed",
            ),
            (
                "cpu write A fill=seed=1",
                1,
                18,
                "invalid fill= value 'seed=1' (expected BYTE or seed:N): separate the kind and the number with ':'",
            ),
            ("cpu read A expect=u64:", 1, 23, "expected a number"),
            (
                "cpu read A expect=pattern",
                1,
                19,
                "invalid expect= value 'pattern' (expected BYTE, seed:N or u64:V)",
            ),
            ("cpu", 1, 4, "expected read or write after 'cpu'"),
            (
                "cpu atomic A",
                1,
                5,
                "unknown cpu access 'atomic' (expected read or write)",
            ),
            (
                "gpu smash A",
                1,
                5,
                "unknown gpu access 'smash' (expected read, write or atomic)",
            ),
            ("gpu wirte A fill=1", 1, 5, "did you mean 'write'?"),
            (
                "gpu write A fill=1 dev=4294967296",
                1,
                24,
                "4294967296 is too large for dev= (the maximum is 4294967295)",
            ),
            (
                "gpu write A fill=1 dev=-1",
                1,
                24,
                "dev= cannot be negative",
            ),
            (
                "gpu atomic A len=8",
                1,
                14,
                "unknown key 'len' for gpu atomic (expected one of count=, dev=)",
            ),
            ("gpu atomic", 1, 11, "gpu atomic needs an address"),
            (
                "cpu read A -> EFAULTY",
                1,
                15,
                "unknown outcome 'EFAULTY': expected ok, SEGV or one of EPERM",
            ),
            (
                "cpu read A -> efault",
                1,
                15,
                "errno names are uppercase: write 'EFAULT'",
            ),
            ("cpu read A -> OK", 1, 15, "write 'ok' in lowercase"),
            ("cpu read A -> segv", 1, 15, "write 'SEGV' in uppercase"),
            ("cpu read A -> ok|", 1, 17, "expected an outcome after '|'"),
            (
                "cpu read A -> ok||EFAULT",
                1,
                18,
                "expected an outcome before '|'",
            ),
            ("cpu read A -> |ok", 1, 15, "expected an outcome before '|'"),
            (
                "cpu read A -> ok EFAULT",
                1,
                18,
                "expected '|' between outcomes, found 'EFAULT'",
            ),
            ("cpu read A -> ok|ok", 1, 18, "outcome 'ok' is listed twice"),
            ("cpu read A ->", 1, 12, "expected an outcome after '->'"),
            (
                "cpu read A -> ok -> ok",
                1,
                18,
                "expected '|' between outcomes, found '->'",
            ),
            ("  -> ok", 1, 3, "an outcome needs a statement before '->'"),
            ("munmap A+ len=4K", 1, 10, "expected an offset after '+'"),
            (
                "munmap A+B",
                1,
                10,
                "expected a numeric offset after '+', found 'B'",
            ),
            (
                "munmap A+1M+18446744073709551615",
                1,
                13,
                "address offsets overflow 64 bits",
            ),
            ("munmap A len=4K len=8K", 1, 17, "duplicate key 'len='"),
            (
                "munmap",
                1,
                7,
                "munmap needs an address (usage: munmap ADDR [len=SIZE])",
            ),
            (
                "mprotect A prot=RW",
                1,
                17,
                "keywords are lowercase: did you mean 'rw'?",
            ),
            ("mprotect A", 1, 11, "mprotect needs prot="),
            ("madvise A", 1, 10, "madvise needs the advice 'dontneed'"),
            (
                "madvise A willneed",
                1,
                11,
                "unexpected argument 'willneed' for madvise",
            ),
            (
                "madvise A dontneed dontneed",
                1,
                20,
                "duplicate flag 'dontneed'",
            ),
            ("mremap A size=4K", 1, 17, "mremap needs new="),
            ("mremap A new=2B", 1, 14, "must not start with a digit"),
            (
                "mremap A new=B dontunmapp",
                1,
                16,
                "did you mean 'dontunmap'?",
            ),
            (
                "prefetch A to=gpu",
                1,
                15,
                "invalid to= value 'gpu' (expected vram or ram)",
            ),
            ("prefetch A", 1, 11, "prefetch needs to="),
            ("advise A", 1, 9, "advise needs preferred= or atomic="),
            (
                "advise A preferred=dev",
                1,
                20,
                "invalid preferred= value 'dev'",
            ),
            (
                "advise A preferred=devX",
                1,
                23,
                "expected a number for the device index",
            ),
            ("advise A atomic=gpu", 1, 17, "invalid atomic= value 'gpu'"),
            ("evict len=4K", 1, 7, "len= needs an address to start from"),
            ("evict A B", 1, 9, "unexpected argument 'B' for evict"),
            ("remove_device", 1, 14, "remove_device needs dev="),
            (
                "remove_device 1",
                1,
                15,
                "unexpected argument '1' for remove_device",
            ),
            (
                "bind_bo A count=1",
                1,
                11,
                "unknown key 'count' for bind_bo (expected one of len=, dev=)",
            ),
            ("exit now", 1, 6, "unexpected argument 'now' for exit"),
            ("exit code=1", 1, 6, "exit takes no key=value options"),
            ("process", 1, 8, "process needs a process name"),
            ("process p-1", 1, 10, "contains '-'"),
            ("fork a b", 1, 8, "unexpected argument 'b' for fork"),
            (
                "expect",
                1,
                7,
                "expected residency, ranges, stat or chunk after 'expect'",
            ),
            ("expect ranges = 1", 1, 15, "use '==' to compare, not '='"),
            ("expect ranges==1", 1, 8, "put spaces around the operator"),
            ("expect ranges ==", 1, 17, "expected the number of ranges"),
            ("expect ranges", 1, 14, "expected a comparison operator"),
            (
                "expect ranges == 1 2",
                1,
                20,
                "unexpected '2' at the end of the expectation",
            ),
            (
                "expect ranges =~ 1",
                1,
                15,
                "expected a comparison operator (==, !=, <, <=, >, >=), found '=~'",
            ),
            (
                "expect ranges == 1 -> ok",
                1,
                20,
                "expectations take no '->' outcome",
            ),
            (
                "expect stat gpu_fault >= 1",
                1,
                13,
                "unknown statistic 'gpu_fault': did you mean 'gpu_faults'?",
            ),
            (
                "expect stat wibble >= 1",
                1,
                13,
                "unknown statistic 'wibble': expected one of gpu_faults",
            ),
            ("expect stat", 1, 12, "expected a statistic name"),
            (
                "expect chunk A >= 2M",
                1,
                16,
                "expect chunk only compares with '=='",
            ),
            ("expect chunk A == ", 1, 18, "expected the chunk size"),
            ("expect chunk", 1, 13, "expected an address"),
            (
                "expect residency A in=gpu",
                1,
                23,
                "expected vram, ram, mixed or none",
            ),
            ("expect residency A", 1, 19, "expect residency needs in="),
            (
                "expect resident A in=vram",
                1,
                8,
                "did you mean 'residency'?",
            ),
            (
                "concurrent seed=1",
                1,
                18,
                "expected '{' at the end of the line",
            ),
            ("concurrent seed=1{", 1, 18, "put a space before '{'"),
            ("concurrent {", 1, 12, "concurrent needs seed="),
            ("concurrent seed=1 seed=2 {", 1, 19, "duplicate key 'seed='"),
            (
                "concurrent seed=1 now {",
                1,
                19,
                "unexpected argument 'now'",
            ),
            (
                "concurrent seed=1 { -> ok",
                1,
                21,
                "concurrent takes no '->' outcome",
            ),
            ("{", 1, 1, "only 'concurrent seed=N {' opens a block"),
            ("}}", 1, 1, "'}' must be alone on its line"),
        ];
        // Collect every mismatch before failing, so one run shows them all.
        let mut failures = Vec::new();
        let mut seen_messages = std::collections::HashSet::new();
        for (text, line, col, needle) in cases {
            let e = err(text);
            if !e.message.contains(needle) || (e.line, e.col) != (*line, *col) {
                failures.push(format!(
                    "{text:?}: got {}:{}: {:?}, want {line}:{col}: ...{needle:?}...",
                    e.line, e.col, e.message
                ));
            }
            seen_messages.insert(e.message);
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
        assert!(seen_messages.len() >= 100);
    }

    #[test]
    fn hints_suggest_close_keywords_only() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("mmap", "mmap"), 0);
        assert_eq!(edit_distance("mmpa", "mmap"), 1); // A swap is one edit.
        assert_eq!(edit_distance("len", "dev"), 2);
        assert_eq!(edit_distance("gpu_fault", "gpu_faults"), 1);
        assert_eq!(edit_distance("ü", "u"), 1);
        assert_eq!(
            hint("MUNMAP", VERBS),
            "keywords are lowercase: did you mean 'munmap'?"
        );
        assert_eq!(hint("evcit", VERBS), "did you mean 'evict'?");
        assert_eq!(hint("len", &["count", "dev"]), "");
        assert_eq!(hint("xyz", VERBS), "");
        assert_eq!(hint("", VERBS), "");
        assert_eq!(hint(&"m".repeat(1000), VERBS), "");
        assert_eq!(quote(&"x".repeat(100)), format!("'{}...'", "x".repeat(40)));
        assert_eq!(quote("a\tb\u{0}"), "'a\\tb\\0'");
    }

    #[test]
    fn errors_on_later_lines_have_the_right_line() {
        let text = "# header\n\nconfig vram=64M\nmmap A size=2M\n\n  cpu write A fill=seed:1\n\tgpu read A expect=seed:x\n";
        let e = err(text);
        assert_eq!((e.line, e.col), (7, 25));
        let e = err(&format!(
            "{}mmap A size=2M\nmunmap A lenn=1M\n",
            "\n".repeat(1000)
        ));
        assert_eq!((e.line, e.col), (1002, 10));
    }

    #[test]
    fn names_may_look_like_keywords_or_flags() {
        assert_eq!(
            kind("mremap dontunmap new=dontneed dontunmap"),
            StmtKind::Mremap {
                name: "dontunmap".into(),
                new_name: "dontneed".into(),
                size: None,
                dontunmap: true,
            }
        );
        assert_eq!(
            kind("madvise dontneed dontneed"),
            StmtKind::MadviseDontneed {
                span: span("dontneed", 0, None)
            }
        );
        assert_eq!(
            kind("cpu write ok fill=1 -> ok"),
            StmtKind::CpuWrite {
                span: span("ok", 0, None),
                fill: Fill::Byte(1)
            }
        );
        assert_eq!(
            kind("process exit"),
            StmtKind::Process {
                name: "exit".into()
            }
        );
    }

    #[test]
    fn huge_and_degenerate_lines_do_not_blow_up() {
        let long_name = "a".repeat(100_000);
        assert_eq!(
            kind(&format!("munmap {long_name}")),
            StmtKind::Munmap {
                span: span(&long_name, 0, None)
            }
        );
        let e = err(&format!("munmap A+{}", "9".repeat(100_000)));
        assert!(e.message.contains("too large"));
        assert!(
            e.message.len() < 200,
            "long tokens are truncated in messages"
        );
        let e = err(&format!("cpu read A -> {}", "ok|".repeat(50_000)));
        assert_eq!(e.col, 18);
        let e = err(&format!("munmap {}", "A ".repeat(100_000)));
        assert_eq!(e.col, 10);
        let e = err(&"{".repeat(100_000));
        assert_eq!(e.col, 1);
        let e = err(&"+".repeat(100_000));
        assert_eq!(e.col, 1);
        // Megabyte-long tokens with many separators are split in linear time.
        let offsets = format!("munmap A{}", "+1".repeat(500_000));
        assert_eq!(
            kind(&offsets),
            StmtKind::Munmap {
                span: span("A", 500_000, None)
            }
        );
        let chunks = format!("config chunks=4K{}", ",4K".repeat(300_000));
        assert_eq!(ok(&chunks).config.chunks.map(|c| c.len()), Some(300_001));
        let e = err(&format!("exit -> ok{}", "|".repeat(1_000_000)));
        assert_eq!(e.col, 12);
        // Many statements are fine too.
        let many = "munmap A len=4K\n".repeat(20_000);
        assert_eq!(ok(&many).stmts.len(), 20_000);
    }

    /// Covers every verb and option, for the printer round trip.
    const EVERYTHING: &str = "\
config page=4K chunks=2M,64K,4K notifier=512M vram=256M devices=2 check_pages_threshold=64K
config migrate_min=64K atomic_timeslice_ms=5 seed=7 range_split=off owners=separate
process p0
mmap A size=4M align=2M
mmap B size=4097 at=0x7f0000000000 prot=r kind=file
mmap C size=2M at=A+2M prot=none kind=thp -> EEXIST|ok
mmap D size=3G kind=shared
mmap E size=2M kind=hugetlb -> ENOMEM
cpu write A fill=seed:18446744073709551615
cpu write A+1M+4K len=4095 fill=0
cpu read A len=8 expect=u64:18446744073709551615
cpu read 0x7f0000001000 len=1 expect=255 -> SEGV
gpu write A len=2M fill=seed:4 dev=1 -> ok|EFAULT|ENOENT
gpu read A+4K expect=7 dev=0
gpu atomic A+8 count=1000000 dev=1
gpu atomic A count=1
prefetch A len=2M to=vram dev=1
prefetch A to=ram
advise A preferred=dev4294967295 atomic=default
advise A len=0 preferred=ram
evict
evict dev=1 A+1M len=1M
remove_device dev=1
bind_bo A len=64K dev=0 -> EBUSY
mprotect A len=4K prot=rw -> EACCES|EPERM
madvise A len=8K dontneed
mremap A new=A2 size=8M dontunmap -> EINVAL|EAGAIN
mremap A2 new=A3
concurrent seed=18446744073709551615 {
  gpu write A len=2M fill=1 -> ok|EFAULT|ENOENT|EINTR|ETIME|ERANGE|EOPNOTSUPP|ENODEV|EIO|ENOSPC|EDEADLK
  munmap A+1M len=1M
  fork child
  exit -> ok|EBUSY
}
expect residency A len=2M in=mixed dev=1
expect ranges != 0
expect stat vram_bytes <= 256M
expect chunk 0x7f0000000000 == 4K
fork child
process child
exit
";

    #[test]
    fn printing_and_reparsing_gives_the_same_tree() {
        let scenario = ok(EVERYTHING);
        assert_eq!(scenario.stmts.len(), 34);
        assert_round_trip(&scenario);
        // Spot-check the printed form of a few statements.
        let printed: Vec<String> = scenario.stmts.iter().map(|s| s.to_string()).collect();
        assert!(printed.contains(&"cpu write A+1028K len=4095 fill=0".to_owned()));
        assert!(printed
            .contains(&"gpu write A len=2M fill=seed:4 dev=1 -> ok|EFAULT|ENOENT".to_owned()));
        assert!(
            printed.contains(&"mmap C size=2M at=A+2M prot=none kind=thp -> EEXIST|ok".to_owned())
        );
        assert!(printed.contains(&"expect chunk 0x7f0000000000 == 4K".to_owned()));
        assert!(printed.contains(&"evict dev=1 A+1M len=1M".to_owned()));
        assert!(printed.contains(
            &"concurrent seed=18446744073709551615 {\n  gpu write A len=2M fill=1 -> ok|EFAULT|ENOENT|EINTR|ETIME|ERANGE|EOPNOTSUPP|ENODEV|EIO|ENOSPC|EDEADLK\n  munmap A+1M len=1M\n  fork child\n  exit -> ok|EBUSY\n}".to_owned()
        ));
        assert_eq!(
            scenario.config.to_string(),
            "config page=4K chunks=2M,64K,4K notifier=512M vram=256M devices=2 \
             check_pages_threshold=64K migrate_min=64K atomic_timeslice_ms=5 seed=7 \
             range_split=off owners=separate"
        );
    }

    /// A small deterministic generator (SplitMix64), so the fuzz loops are reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// Parses `text`, which must not panic; errors must be well-formed, and anything that
    /// parses must survive the print round trip. Returns whether it parsed.
    fn check_no_panic(text: &str) -> bool {
        match parse("fuzz.svm", text) {
            Ok(scenario) => {
                assert_round_trip(&scenario);
                true
            }
            Err(e) => {
                let lines = u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX);
                assert_eq!(e.file, "fuzz.svm");
                assert!(e.line >= 1 && e.line <= lines, "{e} for {text:?}");
                assert!(e.col >= 1, "{e} for {text:?}");
                assert!(!e.message.is_empty());
                false
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(1);
        for _ in 0..3000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_no_panic(&String::from_utf8_lossy(&bytes));
        }
    }

    /// Words and separators of the grammar (and near misses), for inputs that get deep into
    /// the parser instead of failing on the first character.
    const VOCABULARY: &[&str] = &[
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
        "read",
        "write",
        "atomic",
        "prefetch",
        "advise",
        "evict",
        "remove_device",
        "bind_bo",
        "concurrent",
        "expect",
        "residency",
        "ranges",
        "stat",
        "chunk",
        "{",
        "}",
        "A",
        "B",
        "A+1M",
        "A+4K+4K",
        "0x1000",
        "A+",
        "+",
        "p1",
        "dontunmap",
        "dontneed",
        "size=2M",
        "size=4K",
        "align=2M",
        "at=A",
        "prot=r",
        "prot=rw",
        "prot=none",
        "kind=thp",
        "kind=file",
        "len=4K",
        "len=",
        "len=0",
        "fill=7",
        "fill=seed:1",
        "fill=u64:1",
        "expect=seed:1",
        "expect=u64:3",
        "expect=256",
        "dev=0",
        "dev=1",
        "count=3",
        "to=vram",
        "to=ram",
        "preferred=dev1",
        "preferred=ram",
        "atomic=device",
        "in=vram",
        "in=mixed",
        "new=B",
        "seed=1",
        "seed=",
        "vram=64M",
        "chunks=2M,4K",
        "chunks=,",
        "range_split=on",
        "owners=shared",
        "devices=2",
        "gpu_faults",
        "evictions",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "=",
        "->",
        "-> ok",
        "-> EFAULT",
        "-> ok|EFAULT",
        "|",
        "ok",
        "SEGV",
        "EBUSY",
        "#",
        "# c",
        "18446744073709551615",
        "18446744073709551616",
        "0x",
        "4G",
        "1K",
        "99999999999G",
        "ü",
        "\t",
        "\r",
        "=",
        "==1",
        "Ä+1",
        "",
        "_",
        "1A",
    ];

    #[test]
    fn random_token_soup_never_panics() {
        let mut rng = Rng(2);
        let separators = [" ", " ", " ", "\t", "\n", "\r\n", "", "  "];
        let mut parsed = 0;
        for _ in 0..4000 {
            let mut text = String::new();
            for _ in 0..rng.below(30) {
                text.push_str(rng.pick(VOCABULARY));
                text.push_str(rng.pick(&separators));
            }
            if check_no_panic(&text) {
                parsed += 1;
            }
        }
        // Sanity: the soup is not all rejected on the first word.
        assert!(parsed > 0);
    }

    /// Well-formed lines, so random sequences of them exercise config placement and blocks.
    const LINES: &[&str] = &[
        "config vram=64M",
        "config seed=3 range_split=off",
        "mmap A size=2M align=2M",
        "cpu write A fill=seed:1",
        "gpu read A expect=seed:1 dev=0 -> ok|EFAULT",
        "munmap A+1M len=1M",
        "concurrent seed=1 {",
        "}",
        "process p1",
        "fork c",
        "exit",
        "expect ranges >= 0",
        "expect chunk A == 2M",
        "evict dev=0 A",
        "# comment",
        "",
    ];

    #[test]
    fn random_line_sequences_never_panic() {
        let mut rng = Rng(3);
        let mut parsed = 0;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..rng.below(12) {
                text.push_str(rng.pick(LINES));
                text.push('\n');
            }
            if check_no_panic(&text) {
                parsed += 1;
            }
        }
        assert!(parsed > 100, "{parsed}");
    }

    /// Applies one random edit to `text`.
    fn mutate(rng: &mut Rng, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 => {
                let end = (at + rng.below(8)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 => {
                let word = rng.pick(VOCABULARY).as_bytes().to_vec();
                bytes.splice(at..at, word);
            }
            2 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b = rng.next() as u8;
                }
            }
            3 => {
                let special = [
                    b'+', b'=', b'|', b'#', b'{', b'}', b'\n', b'\r', b'\t', b' ', b'-', b'>',
                    b'9', b'x', b'K', b':', 0xC3, 0xFF,
                ];
                bytes.insert(at, special[rng.below(special.len())]);
            }
            4 => {
                // Duplicate a random line.
                let lines: Vec<&str> = text.split('\n').collect();
                let line = lines[rng.below(lines.len())];
                bytes.splice(at..at, format!("\n{line}\n").into_bytes());
            }
            5 => {
                let lines: Vec<&str> = text.split('\n').collect();
                let skip = rng.below(lines.len());
                let kept: Vec<&str> = lines
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, l)| *l)
                    .collect();
                bytes = kept.join("\n").into_bytes();
            }
            _ => bytes.truncate(at),
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn mutated_examples_never_panic() {
        let mut sources: Vec<String> = example_files().into_iter().map(|(_, t)| t).collect();
        sources.extend([EXAMPLE_01, EXAMPLE_07, EVERYTHING].map(str::to_owned));
        let mut rng = Rng(4);
        for source in &sources {
            for _ in 0..300 {
                let mut text = source.clone();
                for _ in 0..1 + rng.below(4) {
                    text = mutate(&mut rng, &text);
                }
                check_no_panic(&text);
            }
        }
    }
}
