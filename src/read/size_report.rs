//! The plugin's size report (pytest-test-categories 1.2.2, FORMATS.md §2.10):
//! the JSON file (`--test-size-report=json --test-size-report-file=…`), a captured
//! terminal log holding that JSON printed to stdout, or the `detailed` terminal report.
//!
//! The JSON is read from a buffered reader and its `tests` array is visited entry by
//! entry (never collected); names and sizes are seen as borrowed strings, so no entry
//! allocates. An entry of the plugin's usual shape is read by a hand-written lane
//! straight from the buffer; any other entry, and the rest of the document, by
//! serde_json, whose results and errors are the reference (see [`read_json`]). Memory
//! does not grow with the report: a JSON token (string or number) longer than
//! [`MAX_JSON_TOKEN`] is an error, nesting is bounded by serde_json's recursion limit,
//! and a terminal log is read one bounded line at a time with its embedded JSON
//! streamed to the same visitor.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::junit::parse_timestamp;
use super::source::{self, FaultKind, InputFault, PeekReader};
use super::{ReadError, SizeEntry};
use crate::model::{Resource, Size};

/// The longest run of JSON without a `"` accepted: 4 MiB. Every key and string value is
/// quoted, so only a giant string or number (which serde_json would have to buffer)
/// comes near it in a size report.
pub const MAX_JSON_TOKEN: u64 = 4 << 20;

/// Terminal-log lines are looked at up to this length; the rest of a longer line is skipped.
const MAX_LOG_LINE: usize = 1 << 20;

/// Reads a JSON size report; calls `on_entry` per test. Returns the report's `timestamp`.
///
/// Two readers, one result. The fast one works on the buffer itself. Each `tests` entry
/// of the usual shape (plain strings, a numeric or `null` duration, a list of violation
/// strings; see `fast::lane`) is read in one pass by a hand-written lane that accepts
/// only what serde_json accepts and yields what it yields. Any other entry, and every
/// other value, is split out of the buffer (string-aware bracket matching) and parsed
/// with serde_json from that slice, where strings are borrowed. Anything unusual (an
/// error, a value over [`MAX_JSON_TOKEN`]) stops the fast reader, and the streaming
/// serde_json reader takes over from the start, skipping the entries already handed
/// on: it gives the same entries, and its error messages and positions, always.
pub fn read_json(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, ReadError> {
    let mut done = 0usize;
    {
        let mut r = source::open(path)?;
        if let Some(ts) = fast::read(&mut r, &mut |e| {
            done += 1;
            on_entry(e)
        }) {
            r.check_unchanged(path)?;
            return Ok(ts);
        }
    }
    let mut skip = done;
    read_json_streaming(path, &mut |e| {
        if skip > 0 {
            skip -= 1;
        } else {
            on_entry(e)
        }
    })
}

/// [`read_json`] with the streaming serde_json reader alone: the reference the fast
/// reader is checked against (differential tests and the `size_report` fuzz target).
#[doc(hidden)]
pub fn read_json_streaming(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, ReadError> {
    let mut r = source::open(path)?;
    let br = BufReader::with_capacity(256 * 1024, TokenGuard::new(&mut r, 0));
    let ts = parse_json(br, on_entry).map_err(|e| json_error(path, e, 0))?;
    r.check_unchanged(path)?;
    Ok(ts)
}

/// The fast reader of [`read_json`]: `None` means "let the streaming reader do it".
mod fast {
    use std::borrow::Cow;
    use std::io::BufRead;

    use serde::de::{DeserializeSeed, IgnoredAny};

    use super::{count_violation, emit, Entry, EntrySeed, SizeEntry, MAX_JSON_TOKEN};
    use crate::read::bytes;
    use crate::read::junit::parse_timestamp;
    use crate::read::source::PeekReader;

    fn ws(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | b'\r')
    }

    /// Skips whitespace; the next byte, if any.
    /// Skips whitespace: the next byte, `Ok(None)` at the end. More than
    /// [`MAX_JSON_TOKEN`] bytes of it is `Err`, left to the streaming reader, whose guard
    /// refuses any such run without a `"`: both readers end the same way.
    fn skip_ws(r: &mut PeekReader) -> Result<Option<u8>, ()> {
        let mut skipped = 0u64;
        loop {
            let buf = r.fill_at_least(1).map_err(|_| ())?;
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            if !ws(first) {
                return Ok(Some(first));
            }
            let n = buf.iter().take_while(|b| ws(**b)).count();
            r.consume(n);
            skipped += n as u64;
            if skipped > MAX_JSON_TOKEN {
                return Err(());
            }
        }
    }

    /// Skips whitespace; the next byte, if any.
    fn peek(r: &mut PeekReader) -> Option<u8> {
        skip_ws(r).ok().flatten()
    }

    fn expect(r: &mut PeekReader, c: u8) -> Option<()> {
        (peek(r)? == c).then(|| r.consume(1))
    }

    /// End (exclusive) of the string starting at `b[i] == '"'`.
    fn string_end(b: &[u8], i: usize) -> Option<usize> {
        let mut j = i + 1;
        loop {
            let k = memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
            if b[j + k] == b'"' {
                return Some(j + k + 1);
            }
            j += k + 2;
        }
    }

    /// End (exclusive) of the JSON value at the start of `b`, if `b` holds all of it.
    fn value_end(b: &[u8]) -> Option<usize> {
        match *b.first()? {
            b'"' => string_end(b, 0),
            b'{' | b'[' => {
                let (mut depth, mut i) = (0usize, 0);
                while i < b.len() {
                    match b[i] {
                        b'"' => {
                            i = string_end(b, i)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                return Some(i + 1);
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                None
            }
            // A number or a literal ends before a delimiter (never at the end of a document
            // whose object is still open).
            _ => b
                .iter()
                .position(|c| ws(*c) || matches!(c, b',' | b'}' | b']')),
        }
    }

    /// Parses the next value with `f`, from a slice of the buffer; consumes it.
    fn with_value<T>(r: &mut PeekReader, f: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
        peek(r)?;
        let mut want = 4096usize;
        loop {
            let buf = r.fill_at_least(want).ok()?;
            if let Some(end) = value_end(buf) {
                let v = f(&buf[..end]);
                r.consume(end);
                return v;
            }
            if buf.len() < want || buf.len() as u64 > MAX_JSON_TOKEN {
                return None;
            }
            want = buf.len() * 2;
        }
    }

    /// Entries the lane reads lie whole within this many bytes of the buffer; the lane
    /// reads ahead at most this far, and leaves a longer entry to the general path.
    const LANE_MAX: usize = 64 * 1024;

    /// The longest `duration` number the lane converts itself (a Python float's `repr`
    /// has at most 24 characters); a longer one is left to serde_json.
    const LANE_NUMBER_MAX: usize = 40;

    /// What [`lane`] did with one `tests` entry.
    enum Lane {
        /// Read and handed on; consumed.
        Taken,
        /// Read, but [`emit`] refused it: the streaming reader must say why.
        Failed,
        /// Not the usual shape (or not certainly valid): nothing consumed.
        Declined,
    }

    #[cfg(test)]
    thread_local! {
        /// Entries the lane took, for the tests (so that they cannot pass without it).
        pub(super) static LANE_TAKEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Reads the next `tests` entry straight from the buffer, when it has the usual shape:
    /// an object whose keys are plain strings, each known key at most once, with `name`
    /// and `size` strings, `duration` a number or `null`, `violations` a list of strings,
    /// and `status` and unknown keys a string, number, `true`, `false` or `null`. Strings
    /// must be UTF-8 without a backslash or a control character, so that their bytes are
    /// their value. Anything else, or an entry not whole within [`LANE_MAX`] bytes, is
    /// [`Lane::Declined`] and left to serde_json ([`EntrySeed`]), which then reads it (or
    /// fails on it) exactly as before. The lane accepts only what serde_json would accept,
    /// and yields what [`EntrySeed`] would yield: the same [`emit`] checks and
    /// [`count_violation`], and a `duration` checked against the JSON number grammar and
    /// then correctly rounded, as serde_json's `float_roundtrip` rounds it (Clinger's
    /// exact fast path, else `str::parse::<f64>`), and declined when not finite, which
    /// serde_json calls out of range. Nothing is consumed before the entry is accepted.
    fn lane(r: &mut PeekReader, on_entry: &mut dyn FnMut(&SizeEntry<'_>)) -> Lane {
        let mut want = 1;
        let mut entry = Entry::default();
        loop {
            let Ok(buf) = r.fill_at_least(want) else {
                return Lane::Declined;
            };
            let b = buf.get(..LANE_MAX).unwrap_or(buf);
            match scan_entry(b, &mut entry) {
                Ok(s) => {
                    let ok = emit::<serde_json::Error>(s.name, s.size, &entry, on_entry).is_ok();
                    let end = s.end;
                    r.consume(end);
                    #[cfg(test)]
                    LANE_TAKEN.with(|n| n.set(n.get() + 1));
                    return if ok { Lane::Taken } else { Lane::Failed };
                }
                // The buffer ends inside the entry: read more, unless the input ended or
                // the entry is longer than the lane reads.
                Err(Stop::More) if buf.len() >= want && b.len() < LANE_MAX => {
                    want = (buf.len() * 2).clamp(4096, LANE_MAX);
                }
                Err(_) => return Lane::Declined,
            }
        }
    }

    /// Why [`scan_entry`] stopped.
    enum Stop {
        /// At the end of the bytes given: the entry may go on.
        More,
        /// Not for the lane.
        No,
    }

    /// One entry read by [`scan_entry`] (its other fields go to an [`Entry`]); `end` is
    /// just after its `}`.
    struct Scanned<'a> {
        end: usize,
        name: &'a str,
        size: &'a str,
    }

    /// Index of the first `"`, `\\` or control byte (< 0x20) in `b`, eight bytes at a
    /// time ([`bytes`]).
    fn special(b: &[u8]) -> Option<usize> {
        let mut at = 0;
        while let Some(w) = bytes::word(b, at) {
            let m = bytes::eq(w, b'"') | bytes::eq(w, b'\\') | bytes::below(w, 0x20);
            if m != 0 {
                return Some(at + bytes::first(m));
            }
            at += 8;
        }
        let k = b[at..]
            .iter()
            .position(|c| matches!(c, b'"' | b'\\' | 0..=0x1f))?;
        Some(at + k)
    }

    /// The value of eight ASCII digits (the first in the lowest byte), or `None` if
    /// they are not all digits.
    fn eight_digits(x: u64) -> Option<u64> {
        const NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
        // Each byte's high nibble must be 3, also after adding 6 (so at most `9`); no
        // carry crosses bytes of that form.
        let check = (x & NIBBLES) | ((x.wrapping_add(0x0606_0606_0606_0606) & NIBBLES) >> 4);
        if check != 0x3333_3333_3333_3333 {
            return None;
        }
        // Pairs, then quadruples, then all eight, by multiplications.
        let v = x - 0x3030_3030_3030_3030;
        let v = v.wrapping_mul(10).wrapping_add(v >> 8);
        let lo = (v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
        let hi = ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
        Some((lo.wrapping_add(hi) >> 32) & 0xFFFF_FFFF)
    }

    // The known keys of an entry, as bits.
    const NAME: u8 = 1;
    const SIZE: u8 = 2;
    const DURATION: u8 = 4;
    const STATUS: u8 = 8;
    const VIOLATIONS: u8 = 16;

    /// Decimal digits read as one integer (wrapping once there are more than 19).
    #[derive(Default)]
    struct Digits {
        value: u64,
        count: u32,
    }

    /// A JSON number as read by [`Cur::number`].
    struct Number<'a> {
        text: &'a [u8],
        negative: bool,
        /// All its digits (integer and fraction) as one integer, if at most 19.
        mantissa: Option<u64>,
        /// The power of ten that scales `mantissa` to the value, if the exponent has at
        /// most four digits.
        exp10: Option<i64>,
    }

    impl Number<'_> {
        /// The value, when one IEEE operation gives it exactly rounded (Clinger's fast
        /// path): a mantissa of at most 2^53 and a power of ten of at most 10^22 are both
        /// exact doubles, so their correctly rounded product or quotient is the correctly
        /// rounded value. Otherwise `None`.
        fn exact(&self) -> Option<f64> {
            const POW10: [f64; 23] = [
                1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
            ];
            let m = self.mantissa.filter(|m| *m <= 1 << 53)? as f64;
            let e = self.exp10?;
            let p = *POW10.get(usize::try_from(e.unsigned_abs()).ok()?)?;
            let v = if e >= 0 { m * p } else { m / p };
            Some(if self.negative { -v } else { v })
        }
    }

    /// A cursor over the buffered bytes; every read past their end is [`Stop::More`].
    struct Cur<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cur<'a> {
        fn byte(&self) -> Result<u8, Stop> {
            self.b.get(self.i).copied().ok_or(Stop::More)
        }

        /// Skips whitespace; the next byte (not consumed). An indentation after a newline
        /// is skipped up to eight spaces at a time.
        fn ws(&mut self) -> Result<u8, Stop> {
            loop {
                let c = self.byte()?;
                if c > b' ' || !ws(c) {
                    return Ok(c);
                }
                self.i += 1;
                if c == b'\n' {
                    while let Some(w) = bytes::word(self.b, self.i) {
                        let x = w ^ 0x2020_2020_2020_2020;
                        if x != 0 {
                            self.i += (x.trailing_zeros() / 8) as usize;
                            break;
                        }
                        self.i += 8;
                    }
                }
            }
        }

        /// The string at `"`: the range of its bytes, which are its value if they are
        /// UTF-8 (no escape, no control character).
        fn raw_string(&mut self) -> Result<std::ops::Range<usize>, Stop> {
            let start = self.i + 1;
            let rest = self.b.get(start..).ok_or(Stop::More)?;
            let k = special(rest).ok_or(Stop::More)?;
            if rest.get(k) != Some(&b'"') {
                return Err(Stop::No);
            }
            self.i = start + k + 1;
            Ok(start..start + k)
        }

        /// The string at `"`, whose bytes are its value; their range.
        fn string(&mut self) -> Result<std::ops::Range<usize>, Stop> {
            let r = self.raw_string()?;
            match self.b.get(r.clone()) {
                Some(s) if bytes::as_text(s).is_some() => Ok(r),
                _ => Err(Stop::No),
            }
        }

        /// A known key at `"`, spelled plainly (the usual case): its bit, consumed.
        /// Otherwise `None`, nothing consumed.
        fn known_key(&mut self) -> Option<u8> {
            let rest = self.b.get(self.i + 1..)?;
            let (key, len): (u8, usize) = match rest.first()? {
                b'n' if rest.starts_with(b"name\"") => (NAME, 4),
                b's' if rest.starts_with(b"size\"") => (SIZE, 4),
                b's' if rest.starts_with(b"status\"") => (STATUS, 6),
                b'd' if rest.starts_with(b"duration\"") => (DURATION, 8),
                b'v' if rest.starts_with(b"violations\"") => (VIOLATIONS, 10),
                _ => return None,
            };
            self.i += len + 2;
            Some(key)
        }

        /// [`string`](Self::string) as text.
        fn text(&mut self) -> Result<&'a str, Stop> {
            let r = self.raw_string()?;
            self.b.get(r).and_then(bytes::as_text).ok_or(Stop::No)
        }

        /// `true`, `false` or `null`, spelled `lit`.
        fn literal(&mut self, lit: &[u8]) -> Result<(), Stop> {
            let rest = self.b.get(self.i..).ok_or(Stop::More)?;
            if rest.starts_with(lit) {
                self.i += lit.len();
                Ok(())
            } else if lit.starts_with(rest) {
                Err(Stop::More)
            } else {
                Err(Stop::No)
            }
        }

        /// Digits, appended to `n`: eight at a time while eight follow, then one by one.
        fn digits(&mut self, n: &mut Digits) -> Result<(), Stop> {
            while let Some(x) = bytes::word(self.b, self.i) {
                let Some(v) = eight_digits(x) else {
                    break;
                };
                n.value = n.value.wrapping_mul(100_000_000).wrapping_add(v);
                n.count += 8;
                self.i += 8;
            }
            loop {
                let c = self.byte()?;
                if !c.is_ascii_digit() {
                    return Ok(());
                }
                n.value = n.value.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                n.count += 1;
                self.i += 1;
            }
        }

        /// A number, checked against the JSON grammar
        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. The caller checks that a
        /// delimiter follows (`01` stops after `0`).
        fn number(&mut self) -> Result<Number<'a>, Stop> {
            let start = self.i;
            let negative = self.byte()? == b'-';
            if negative {
                self.i += 1;
            }
            // The integer and fraction digits, as one integer.
            let mut m = Digits::default();
            match self.byte()? {
                b'1'..=b'9' => self.digits(&mut m)?,
                b'0' => {
                    self.i += 1;
                    m.count = 1;
                }
                _ => return Err(Stop::No),
            }
            let int_digits = m.count;
            if self.byte()? == b'.' {
                self.i += 1;
                if !self.byte()?.is_ascii_digit() {
                    return Err(Stop::No);
                }
                self.digits(&mut m)?;
            }
            let (mut e, mut e_negative) = (Digits::default(), false);
            if matches!(self.byte()?, b'e' | b'E') {
                self.i += 1;
                match self.byte()? {
                    b'+' => self.i += 1,
                    b'-' => {
                        self.i += 1;
                        e_negative = true;
                    }
                    _ => {}
                }
                if !self.byte()?.is_ascii_digit() {
                    return Err(Stop::No);
                }
                self.digits(&mut e)?;
            }
            let exp10 = (e.count <= 4).then(|| {
                let e = e.value as i64;
                (if e_negative { -e } else { e }) - i64::from(m.count - int_digits)
            });
            Ok(Number {
                text: self.b.get(start..self.i).ok_or(Stop::No)?,
                negative,
                mantissa: (m.count <= 19).then_some(m.value),
                exp10,
            })
        }

        /// `duration`: the f64 serde_json gives, when finite.
        fn duration(&mut self) -> Result<Option<f64>, Stop> {
            if self.byte()? == b'n' {
                return self.literal(b"null").map(|()| None);
            }
            let n = self.number()?;
            if n.text.len() > LANE_NUMBER_MAX {
                return Err(Stop::No);
            }
            let d = match n.exact() {
                Some(d) => d,
                None => bytes::as_text(n.text)
                    .and_then(|s| s.parse().ok())
                    .ok_or(Stop::No)?,
            };
            if d.is_finite() {
                Ok(Some(d))
            } else {
                Err(Stop::No)
            }
        }

        /// A value skipped unparsed (`status`, unknown keys): a scalar only.
        fn scalar(&mut self) -> Result<(), Stop> {
            match self.byte()? {
                b'"' => self.string().map(drop),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                b'-' | b'0'..=b'9' => self.number().map(drop),
                _ => Err(Stop::No),
            }
        }

        /// `violations`: a list of strings, counted into `e`.
        fn violations(&mut self, e: &mut Entry) -> Result<(), Stop> {
            if self.byte()? != b'[' {
                return Err(Stop::No);
            }
            self.i += 1;
            if self.ws()? == b']' {
                self.i += 1;
                return Ok(());
            }
            loop {
                if self.ws()? != b'"' {
                    return Err(Stop::No);
                }
                count_violation(e, self.text()?);
                match self.ws()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        return Ok(());
                    }
                    _ => return Err(Stop::No),
                }
            }
        }
    }

    /// The entry at the start of `b` (after any whitespace), if it is one for the lane.
    fn scan_entry<'a>(b: &'a [u8], entry: &mut Entry) -> Result<Scanned<'a>, Stop> {
        let mut c = Cur { b, i: 0 };
        if c.ws()? != b'{' {
            return Err(Stop::No);
        }
        c.i += 1;
        let (mut name, mut size) = (None, None);
        *entry = Entry::default();
        let mut seen = 0u8;
        loop {
            if c.ws()? != b'"' {
                // Also `{}` (no name) and a trailing comma: serde_json's to report.
                return Err(Stop::No);
            }
            let key = match c.known_key() {
                Some(k) => k,
                None => {
                    let k = c.string()?;
                    match b.get(k).ok_or(Stop::No)? {
                        b"name" => NAME,
                        b"size" => SIZE,
                        b"duration" => DURATION,
                        b"status" => STATUS,
                        b"violations" => VIOLATIONS,
                        _ => 0,
                    }
                }
            };
            if seen & key != 0 {
                // A duplicate field: an error serde_json reports.
                return Err(Stop::No);
            }
            seen |= key;
            if c.ws()? != b':' {
                return Err(Stop::No);
            }
            c.i += 1;
            let v = c.ws()?;
            match key {
                NAME | SIZE if v != b'"' => return Err(Stop::No),
                NAME => name = Some(c.text()?),
                SIZE => size = Some(c.text()?),
                DURATION => entry.duration = c.duration()?,
                VIOLATIONS => c.violations(entry)?,
                _ => c.scalar()?,
            }
            match c.ws()? {
                b',' => c.i += 1,
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return Err(Stop::No),
            }
        }
        match (name, size) {
            (Some(name), Some(size)) => Ok(Scanned {
                end: c.i,
                name,
                size,
            }),
            _ => Err(Stop::No),
        }
    }

    /// The lane's reading of a whole `duration` value `b`; `None` when it declines.
    #[cfg(test)]
    pub(super) fn lane_duration(b: &[u8]) -> Option<Option<f64>> {
        let mut with_end = b.to_vec();
        with_end.push(b'}');
        let mut c = Cur { b: &with_end, i: 0 };
        let d = c.duration().ok()?;
        (c.i == b.len()).then_some(d)
    }

    /// [`eight_digits`] of the first eight bytes of `b`.
    #[cfg(test)]
    pub(super) fn lane_eight_digits(b: &[u8; 8]) -> Option<u64> {
        eight_digits(u64::from_le_bytes(*b))
    }

    /// The fast path's value of the number `b`, if it has one.
    #[cfg(test)]
    pub(super) fn lane_exact(b: &[u8]) -> Option<f64> {
        let mut with_end = b.to_vec();
        with_end.push(b'}');
        Cur { b: &with_end, i: 0 }.number().ok()?.exact()
    }

    pub(super) fn read(
        r: &mut PeekReader,
        on_entry: &mut dyn FnMut(&SizeEntry<'_>),
    ) -> Option<Option<f64>> {
        let (mut name, mut size) = (String::new(), String::new());
        let mut ts = None;
        let mut saw_tests = false;
        expect(r, b'{')?;
        if peek(r)? != b'}' {
            loop {
                let key: Cow<str> = with_value(r, |b| serde_json::from_slice(b).ok())?;
                expect(r, b':')?;
                match &*key {
                    "tests" => {
                        saw_tests = true;
                        expect(r, b'[')?;
                        if peek(r)? == b']' {
                            r.consume(1);
                        } else {
                            loop {
                                match lane(r, on_entry) {
                                    Lane::Taken => {}
                                    Lane::Failed => return None,
                                    Lane::Declined => with_value(r, |b| {
                                        let mut de = serde_json::Deserializer::from_slice(b);
                                        let seed = EntrySeed {
                                            name: &mut name,
                                            size: &mut size,
                                        };
                                        let t = seed.deserialize(&mut de).ok()?;
                                        de.end().ok()?;
                                        emit::<serde_json::Error>(&name, &size, &t, on_entry).ok()
                                    })?,
                                }
                                match peek(r)? {
                                    b',' => r.consume(1),
                                    b']' => {
                                        r.consume(1);
                                        break;
                                    }
                                    _ => return None,
                                }
                            }
                        }
                    }
                    "timestamp" => {
                        let v: Option<String> = with_value(r, |b| serde_json::from_slice(b).ok())?;
                        ts = match v {
                            Some(v) => Some(parse_timestamp(&v)?),
                            None => None,
                        };
                    }
                    _ => with_value(r, |b| serde_json::from_slice::<IgnoredAny>(b).ok())
                        .map(|_| ())?,
                }
                match peek(r)? {
                    b',' => r.consume(1),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        r.consume(1);
        // Only whitespace may follow.
        if skip_ws(r) != Ok(None) || !saw_tests {
            return None;
        }
        Some(ts)
    }
}

fn json_error(path: &Path, e: serde_json::Error, line_offset: u64) -> ReadError {
    let msg = strip_serde_position(&e.to_string());
    let (line, column) = (e.line() as u64, e.column() as u64);
    let what = if e.is_eof() {
        format!("truncated JSON size report: {msg}")
    } else if e.is_syntax() {
        format!("malformed JSON: {msg}")
    } else if e.is_io() {
        let io: io::Error = e.into();
        return ReadError::from_io(path, &io);
    } else {
        format!("not a pytest-test-categories size report: {msg}")
    };
    if line == 0 {
        ReadError::plain(path, what)
    } else {
        ReadError::at_line(path, line + line_offset, column, what)
    }
}

/// serde_json appends " at line L column C"; the error already shows the position.
fn strip_serde_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Fails a read once more than [`MAX_JSON_TOKEN`] bytes pass without a `"`.
struct TokenGuard<R> {
    inner: R,
    /// Bytes since the last quote.
    run: u64,
    /// Content offset of the next byte.
    offset: u64,
}

impl<R: Read> TokenGuard<R> {
    fn new(inner: R, offset: u64) -> Self {
        TokenGuard {
            inner,
            run: 0,
            offset,
        }
    }
}

impl<R: Read> Read for TokenGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(out)?;
        let chunk = &out[..k];
        let (first, last) = match memchr::memchr(b'"', chunk) {
            Some(f) => (f, memchr::memrchr(b'"', chunk).unwrap_or(f)),
            None => (k, k),
        };
        if self.run + first as u64 > MAX_JSON_TOKEN {
            let f = InputFault {
                offset: self.offset - self.run,
                kind: FaultKind::TokenTooLong(MAX_JSON_TOKEN),
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, f));
        }
        self.run = if first < k {
            (k - last - 1) as u64
        } else {
            self.run + k as u64
        };
        self.offset += k as u64;
        Ok(k)
    }
}

/// Parses a size report; returns its `timestamp`. Takes the `BufReader` by value: only
/// then does serde_json's byte-at-a-time reading take std's fast path.
fn parse_json<R: Read>(
    r: BufReader<TokenGuard<R>>,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let ts = ReportSeed { on_entry }.deserialize(&mut de)?;
    de.end()?;
    Ok(ts)
}

struct ReportSeed<'a> {
    on_entry: &'a mut dyn FnMut(&SizeEntry<'_>),
}

impl<'de> DeserializeSeed<'de> for ReportSeed<'_> {
    type Value = Option<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReportSeed<'_> {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with \"tests\"")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ts = None;
        let mut saw_tests = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "tests" => {
                    map.next_value_seed(TestsSeed {
                        on_entry: &mut *self.on_entry,
                    })?;
                    saw_tests = true;
                }
                "timestamp" => {
                    let v: Option<String> = map.next_value()?;
                    if let Some(v) = v {
                        ts = Some(parse_timestamp(&v).ok_or_else(|| {
                            de::Error::custom(format!(
                                "\"timestamp\": {v:?} is not an ISO 8601 date and time"
                            ))
                        })?);
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !saw_tests {
            return Err(de::Error::custom(
                "no \"tests\" list (write it with --test-size-report=json)",
            ));
        }
        Ok(ts)
    }
}

struct TestsSeed<'a> {
    on_entry: &'a mut dyn FnMut(&SizeEntry<'_>),
}

impl<'de> DeserializeSeed<'de> for TestsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TestsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tests")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut name = String::new();
        let mut size = String::new();
        loop {
            let seed = EntrySeed {
                name: &mut name,
                size: &mut size,
            };
            let Some(t) = seq.next_element_seed(seed)? else {
                return Ok(());
            };
            emit(&name, &size, &t, &mut *self.on_entry)?;
        }
    }
}

/// Checks one parsed entry and hands it on.
fn emit<E: de::Error>(
    name: &str,
    size: &str,
    t: &Entry,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<(), E> {
    let sz = Size::parse(size)
        .filter(|s| *s != Size::Unknown)
        .ok_or_else(|| {
            de::Error::custom(format!(
                "test {name:?} has size {size:?}; expected small, medium, large, xlarge or unsized"
            ))
        })?;
    if let Some(d) = t.duration {
        if !d.is_finite() || d < 0.0 {
            return Err(de::Error::custom(format!(
                "test {name:?} has duration {d}; expected seconds ≥ 0"
            )));
        }
    }
    on_entry(&SizeEntry {
        name,
        size: Some(sz),
        duration: t.duration,
        timing: t.timing,
        hermeticity: t.hermeticity,
    });
    Ok(())
}

/// The fields of one `tests` entry (`status` is ignored).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Name,
    Size,
    Duration,
    Status,
    Violations,
    #[serde(other)]
    Other,
}

/// One entry: `name` and `size` into the caller's buffers, the rest returned.
struct EntrySeed<'b> {
    name: &'b mut String,
    size: &'b mut String,
}

#[derive(Default)]
struct Entry {
    duration: Option<f64>,
    timing: bool,
    hermeticity: [u32; 5],
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a test object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut e = Entry::default();
        let mut seen = [false; 5];
        let mut once = |i: usize, name: &'static str| {
            if std::mem::replace(&mut seen[i], true) {
                Err(de::Error::duplicate_field(name))
            } else {
                Ok(())
            }
        };
        while let Some(k) = map.next_key::<Field>()? {
            match k {
                Field::Name => {
                    once(0, "name")?;
                    map.next_value_seed(StrInto(&mut *self.name))?;
                }
                Field::Size => {
                    once(1, "size")?;
                    map.next_value_seed(StrInto(&mut *self.size))?;
                }
                Field::Duration => {
                    once(2, "duration")?;
                    e.duration = map.next_value()?;
                }
                Field::Status => {
                    // Not used: skipped unparsed (no copy, no check of its type).
                    once(3, "status")?;
                    map.next_value::<IgnoredAny>()?;
                }
                Field::Violations => {
                    once(4, "violations")?;
                    map.next_value_seed(Violations(&mut e))?;
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen[0] {
            return Err(de::Error::missing_field("name"));
        }
        if !seen[1] {
            return Err(de::Error::missing_field("size"));
        }
        Ok(e)
    }
}

/// A JSON string copied into a reused buffer.
struct StrInto<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for StrInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
}

/// `violations`: `"timing"` and `"hermeticity:<resource>"` entries, counted.
struct Violations<'b>(&'b mut Entry);

impl<'de> DeserializeSeed<'de> for Violations<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Violations<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Violation(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct Violation<'b>(&'b mut Entry);

impl<'de> DeserializeSeed<'de> for Violation<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Violation<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        count_violation(self.0, v);
        Ok(())
    }
}

/// Counts one `violations` string into `e`; other strings are ignored.
fn count_violation(e: &mut Entry, v: &str) {
    if v == "timing" {
        e.timing = true;
    } else if let Some(r) = v.strip_prefix("hermeticity:").and_then(Resource::parse) {
        let n = &mut e.hermeticity[r.index()];
        *n = n.saturating_add(1);
    }
}

/// Reads a captured pytest terminal log: the JSON report printed to stdout
/// (a line `{` … a line `}`), or the `Detailed Test Size Report` table.
pub fn read_terminal_log(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, ReadError> {
    let mut r = source::open(path)?;
    let mut line = Vec::new();
    let mut n = 0u64;
    let mut in_detailed = false;
    let mut found = false;
    let mut ts = None;
    loop {
        let k = read_line_capped(&mut r, &mut line, MAX_LOG_LINE)
            .map_err(|e| ReadError::from_io(path, &e))?;
        if k == 0 {
            break;
        }
        n += 1;
        let text = String::from_utf8_lossy(&line);
        let t = text.trim_end_matches(['\n', '\r']);
        if t == "{" {
            // The JSON runs to the next line that is exactly `}`: streamed, not collected.
            let start = n;
            let offset = r.position();
            let mut state = LinesState::default();
            let lines = JsonLines::new(&mut r, &mut state);
            let br = BufReader::with_capacity(64 * 1024, TokenGuard::new(lines, offset));
            let parsed = parse_json(br, on_entry);
            n += state.lines;
            if !state.closed && parsed.is_ok() {
                return Err(ReadError::at_line(
                    path,
                    n,
                    1,
                    "truncated JSON size report: no closing `}` line",
                ));
            }
            ts = parsed.map_err(|e| json_error(path, e, start - 1))?;
            found = true;
            continue;
        }
        if t.starts_with('=') && t.contains(" Detailed Test Size Report ") {
            in_detailed = true;
            found = true;
            continue;
        }
        if in_detailed {
            if t.starts_with('=') {
                in_detailed = false;
            } else if let Some(e) = detailed_row(t) {
                on_entry(&e);
            }
        }
    }
    if !found {
        return Err(ReadError::plain(
            path,
            "is a text file without a size report: expected the JSON report printed by \
             --test-size-report=json, or the table of --test-size-report=detailed",
        ));
    }
    r.check_unchanged(path)?;
    Ok(ts)
}

/// Reads one line (with its `\n`) and keeps at most `cap` bytes of it. Returns the bytes
/// consumed, 0 at the end.
fn read_line_capped(r: &mut PeekReader, line: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    line.clear();
    let mut total = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (k, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let keep = k.min(cap.saturating_sub(line.len()));
        line.extend_from_slice(&buf[..keep]);
        r.consume(k);
        total += k;
        if done {
            return Ok(total);
        }
    }
}

/// The JSON printed in a terminal log: `{` (already read) and the lines after it up to and
/// including the first line that is exactly `}`; then the end.
struct JsonLines<'a> {
    r: &'a mut PeekReader,
    /// `{\n`, then a normalized `}\n`.
    pending: &'static [u8],
    at_line_start: bool,
    st: &'a mut LinesState,
}

/// What [`JsonLines`] saw, for after the parse.
#[derive(Default)]
struct LinesState {
    /// The `}` line was reached.
    closed: bool,
    /// Lines consumed.
    lines: u64,
}

impl<'a> JsonLines<'a> {
    fn new(r: &'a mut PeekReader, st: &'a mut LinesState) -> Self {
        JsonLines {
            r,
            pending: b"{\n",
            at_line_start: true,
            st,
        }
    }
}

impl Read for JsonLines<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.pending.is_empty() {
            let k = self.pending.len().min(out.len());
            out[..k].copy_from_slice(&self.pending[..k]);
            self.pending = &self.pending[k..];
            return Ok(k);
        }
        if self.st.closed {
            return Ok(0);
        }
        if self.at_line_start {
            let h = self.r.fill_at_least(3)?;
            let close = if h == b"}" || h.starts_with(b"}\n") {
                Some(h.len().min(2))
            } else if h.starts_with(b"}\r\n") {
                Some(3)
            } else {
                None
            };
            if let Some(len) = close {
                self.r.consume(len);
                self.st.lines += 1;
                self.st.closed = true;
                self.pending = b"}\n";
                return self.read(out);
            }
        }
        let buf = self.r.fill_buf()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let end = memchr::memchr(b'\n', buf).map_or(buf.len(), |i| i + 1);
        let k = end.min(out.len());
        out[..k].copy_from_slice(&buf[..k]);
        self.at_line_start = buf[k - 1] == b'\n';
        if self.at_line_start {
            self.st.lines += 1;
        }
        self.r.consume(k);
        Ok(k)
    }
}

/// `f"{nodeid:40} {size:8} {duration:.1f}s      {status}"`, parsed from the right
/// because the node id may hold spaces and is padded but never cut (FORMATS.md §2.10.2).
fn detailed_row(t: &str) -> Option<SizeEntry<'_>> {
    let t = t.trim_end();
    let (rest, status) = t.rsplit_once(' ')?;
    if status != "Pass" && status != "FAIL" && status != "SLOW" {
        return None;
    }
    let rest = rest.trim_end();
    let (rest, dur) = rest.rsplit_once(' ')?;
    let _dur: f64 = dur.strip_suffix('s')?.parse().ok()?;
    let rest = rest.trim_end();
    let (id, size) = rest.rsplit_once(' ')?;
    let size = Size::parse(size).filter(|s| *s != Size::Unknown)?;
    let id = id.trim_end();
    if id.is_empty() {
        return None;
    }
    Some(SizeEntry {
        name: id,
        size: Some(size),
        // 0.1 s precision, and 0.0 for tests without a call phase: use JUnit time instead.
        duration: None,
        // Timing comes from the JUnit TC006 text; the rounded duration cannot decide it.
        timing: false,
        hermeticity: [0; 5],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_bytes(
        doc: &[u8],
        on_entry: &mut dyn FnMut(&SizeEntry<'_>),
    ) -> Result<Option<f64>, serde_json::Error> {
        parse_json(BufReader::new(TokenGuard::new(doc, 0)), on_entry)
    }

    #[test]
    fn detailed_rows_parse_from_the_right() {
        let e = detailed_row(
            "tests/test_errors.py::test_fails_and_teardown_errors small    0.0s      FAIL",
        )
        .unwrap();
        assert_eq!(
            e.name,
            "tests/test_errors.py::test_fails_and_teardown_errors"
        );
        assert_eq!(e.size, Some(Size::Small));
        let e = detailed_row("tests/p.py::test_awkward_ids[a b c]      medium   2.5s      Pass")
            .unwrap();
        assert_eq!(e.name, "tests/p.py::test_awkward_ids[a b c]");
        assert_eq!(e.size, Some(Size::Medium));
        let e = detailed_row("tests/test_unmarked.py::test_unmarked_pass unsized  0.0s      Pass")
            .unwrap();
        assert_eq!(e.size, Some(Size::Unsized));
        assert!(detailed_row(
            "Test Name                                 Size     Duration    Status"
        )
        .is_none());
        assert!(detailed_row(
            "------------------------------------------------------------------------"
        )
        .is_none());
    }

    #[test]
    fn json_entries_stream() {
        let doc = br#"{"version":"1.2.2","timestamp":"2026-11-26T13:15:34.876060Z","summary":{},
          "tests":[{"name":"a.py::t [SMALL]","size":"small","duration":7.18e-05,"status":"passed",
                    "violations":["timing","hermeticity:process","hermeticity:process"]},
                   {"name":"a.py::u","size":"unsized","duration":null,"status":"passed","violations":[]}]}"#;
        let mut got = Vec::new();
        let ts = parse_bytes(&doc[..], &mut |e| got.push(SizeEntry { name: "", ..*e })).unwrap();
        assert_eq!(ts, Some(1795698934.87606));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].duration, Some(7.18e-05));
        assert!(got[0].timing);
        assert_eq!(got[0].hermeticity, [0, 0, 2, 0, 0]);
        assert_eq!(got[1].size, Some(Size::Unsized));
        assert_eq!(got[1].duration, None);
    }

    fn read_names(doc: &[u8]) -> Result<(Vec<String>, Option<f64>), ReadError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, doc).unwrap();
        let mut names = Vec::new();
        let ts = read_json(f.path(), &mut |e| names.push(e.name.to_string()))?;
        Ok((names, ts))
    }

    #[test]
    fn the_fast_reader_hands_over_without_repeating_an_entry() {
        // The third entry is over the fast reader's limit (but no single token is): the
        // streaming reader finishes, skipping the two entries already handed on.
        let big = vec!["\"timing\""; 600_000].join(",");
        let doc = format!(
            r#"{{"timestamp": "2026-11-26T13:15:34Z", "tests": [
              {{"name": "a", "size": "small"}}, {{"name": "b", "size": "small", "duration": null}},
              {{"name": "c", "size": "large", "violations": [{big}]}},
              {{"name": "d", "size": "unsized", "status": "passed"}}], "summary": {{"x": [1, {{}}]}}}}"#
        );
        assert!(doc.len() as u64 > MAX_JSON_TOKEN);
        let (names, ts) = read_names(doc.as_bytes()).unwrap();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(ts, Some(1795698934.0));
        // Fast all the way, with escapes, odd spacing and unknown keys.
        let doc = br#" { "t\u0065sts" :[ {"size":"medium","name":"x\"y","other":{"n":[1,2]}} ] ,"version":"1.2.2" }
"#;
        assert_eq!(read_names(doc).unwrap().0, ["x\"y"]);
        // An error after good entries: the streaming reader's message and position.
        let e = read_names(
            br#"{"tests": [{"name": "a", "size": "small"},
 {"name": "b", "size": "huge"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.position, Some((2, 31)));
        assert!(
            e.message.contains("test \"b\" has size \"huge\""),
            "{}",
            e.message
        );
        // Trailing garbage is malformed, as serde_json says.
        let e = read_names(br#"{"tests": []} x"#).unwrap_err();
        assert!(
            e.message.starts_with("malformed JSON: trailing characters"),
            "{}",
            e.message
        );
    }

    #[test]
    fn json_wrong_types_are_errors() {
        let doc = br#"{"tests":[{"name":"a","size":3,"duration":null,"violations":[]}]}"#;
        let e = parse_bytes(&doc[..], &mut |_| {}).unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid type: integer `3`, expected a string"),
            "{e}"
        );
        let doc = br#"{"tests":[{"name":"a","size":"huge","duration":null}]}"#;
        let e = parse_bytes(&doc[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("has size \"huge\""), "{e}");
        let e = parse_bytes(&br#"{"version":"1"}"#[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("no \"tests\" list"), "{e}");
    }
}

/// The JSON lane (`fast::lane`) against the streaming serde_json reader.
#[cfg(test)]
mod lane_tests {
    use std::io::Write;

    use rand::{Rng, SeedableRng};

    use super::*;

    type Owned = (String, Option<Size>, Option<u64>, bool, [u32; 5]);

    fn own(e: &SizeEntry<'_>) -> Owned {
        (
            e.name.to_string(),
            e.size,
            e.duration.map(f64::to_bits),
            e.timing,
            e.hermeticity,
        )
    }

    /// Everything a reader hands on, and how it ends (`Ok` bits of the timestamp, or the
    /// error as printed).
    type Outcome = (Vec<Owned>, Result<Option<u64>, String>);

    fn via_read_json(path: &Path) -> (Outcome, usize) {
        let before = fast::LANE_TAKEN.with(|n| n.get());
        let mut got = Vec::new();
        let end = read_json(path, &mut |e| got.push(own(e)))
            .map(|t| t.map(f64::to_bits))
            .map_err(|e| e.to_string());
        let taken = fast::LANE_TAKEN.with(|n| n.get()) - before;
        ((got, end), taken)
    }

    /// The streaming serde_json reader alone, as `read_json` runs it.
    fn via_serde(path: &Path) -> Outcome {
        let mut got = Vec::new();
        let end = read_json_streaming(path, &mut |e| got.push(own(e)))
            .map(|t| t.map(f64::to_bits))
            .map_err(|e| e.to_string());
        (got, end)
    }

    struct Doc(tempfile::NamedTempFile);

    impl Doc {
        fn new() -> Self {
            Doc(tempfile::NamedTempFile::new().unwrap())
        }
        /// Both readers on `bytes`; asserts they agree. The entries the lane took.
        fn check(&mut self, bytes: &[u8]) -> usize {
            self.check_ok(bytes).0
        }

        /// [`check`](Self::check), and whether the read succeeded.
        fn check_ok(&mut self, bytes: &[u8]) -> (usize, bool) {
            let f = self.0.as_file_mut();
            f.set_len(0).unwrap();
            std::io::Seek::rewind(f).unwrap();
            f.write_all(bytes).unwrap();
            f.flush().unwrap();
            let (fast, taken) = via_read_json(self.0.path());
            let slow = via_serde(self.0.path());
            assert_eq!(fast, slow, "on {:?}", String::from_utf8_lossy(bytes));
            (taken, fast.1.is_ok())
        }
    }

    const NORMAL: &str = r#"{
      "name": "tests/unit/pkg_0/test_mod_0.py::TestCreate::test_merges_ledger_entry_1",
      "size": "small",
      "duration": 0.4141274800290968,
      "status": "passed",
      "violations": []
    }"#;

    /// `entry` between two usual entries, in a pretty-printed report.
    fn doc(entry: &[u8]) -> Vec<u8> {
        let mut d = br#"{
  "version": "1.2.2",
  "timestamp": "2026-11-26T14:36:58.962184Z",
  "summary": {"total_tests": 3, "violations": {"timing": 1}},
  "tests": [
    "#
        .to_vec();
        d.extend_from_slice(NORMAL.as_bytes());
        d.extend_from_slice(b",\n    ");
        d.extend_from_slice(entry);
        d.extend_from_slice(b",\n    ");
        d.extend_from_slice(NORMAL.replace("_1\"", "_2\"").as_bytes());
        d.extend_from_slice(b"\n  ]\n}\n");
        d
    }

    #[test]
    fn the_lane_takes_the_usual_shapes_and_agrees() {
        let taken: &[&str] = &[
            NORMAL,
            r#"{"name":"a","size":"small","duration":0.5,"status":"passed","violations":[]}"#,
            "{\t\"name\" :\r\n\"a\" , \"size\":\"medium\"}",
            r#"{"violations": ["timing"], "status": "failed", "duration": 1e-5, "size": "large", "name": "b"}"#,
            r#"{"name": "c", "size": "small", "duration": null}"#,
            r#"{"name": "c", "size": "xlarge", "extra": 1, "x": true, "y": false, "z": null}"#,
            r#"{"name": "c", "size": "small", "extra": "1", "extra": -2.5E+3, "status": 7}"#,
            // Skipped numbers are only checked against the grammar, as by serde_json.
            r#"{"name": "c", "size": "small", "other": 1e999, "status": -0.0e-0}"#,
            r#"{"name": "d", "size": "unsized", "violations": ["timing", "hermeticity:network",
                "hermeticity:network", "hermeticity:sleep", "hermeticity:bogus", "other", "",
                "hermeticity:", "Timing"]}"#,
            r#"{"name": "e", "size": "small", "duration": -0.0}"#,
            r#"{"name": "e", "size": "small", "duration": 0}"#,
            r#"{"name": "e", "size": "small", "duration": 5}"#,
            r#"{"name": "e", "size": "small", "duration": 12345678901234567890123}"#,
            r#"{"name": "e", "size": "small", "duration": 0.1e1}"#,
            r#"{"name": "e", "size": "small", "duration": 1E+2}"#,
            r#"{"name": "e", "size": "small", "duration": 1e-400}"#,
            r#"{"name": "e", "size": "small", "duration": 4.9e-324}"#,
            r#"{"name": "e", "size": "small", "duration": 1.7976931348623157e308}"#,
            r#"{"name": "e", "size": "small", "duration": 9007199254740993}"#,
            r#"{"name": "é ü 中 🦀", "size": "small", "clé": "värde"}"#,
            r#"{"name": "", "size": "small"}"#,
        ];
        // Taken, then refused by `emit`: the streaming reader's error.
        let refused: &[&str] = &[
            r#"{"name": "f", "size": "huge"}"#,
            r#"{"name": "f", "size": "unknown"}"#,
            r#"{"name": "f", "size": "small", "duration": -1.5}"#,
            r#"{"name": "f", "size": "small", "duration": -1e-300}"#,
        ];
        let mut d = Doc::new();
        for e in taken {
            assert_eq!(d.check_ok(&doc(e.as_bytes())), (3, true), "{e}");
        }
        for e in refused {
            assert_eq!(d.check_ok(&doc(e.as_bytes())), (2, false), "{e}");
        }
        // The committed fixtures (and one of the benchmark's shape) go all through it.
        for dir in ["fixtures/pytest-9.2", "fixtures/pytest-9.1"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for f in std::fs::read_dir(dir).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|x| x == "json") {
                    let bytes = std::fs::read(&p).unwrap();
                    let n = d.check(&bytes);
                    assert!(n > 0, "{}", p.display());
                }
            }
        }
    }

    #[test]
    fn the_lane_declines_what_it_does_not_know() {
        let declined: &[&[u8]] = &[
            br#"{"name": "a\"b", "size": "small"}"#,
            br#"{"name": "\u00e9", "size": "small"}"#,
            br#"{"name": "a\nb", "size": "small"}"#,
            br#"{"n\u0061me": "a", "size": "small"}"#,
            b"{\"name\": \"a\tb\", \"size\": \"small\"}",
            b"{\"name\": \"a\x01b\", \"size\": \"small\"}",
            b"{\"name\": \"a\xffb\", \"size\": \"small\"}",
            b"{\"name\": \"a\", \"size\": \"small\", \"status\": \"\xc3\"}",
            b"{\"name\": \"a\", \"size\": \"small\", \"x\xff\": 1}",
            br#"{"name": "a", "name": "b", "size": "small"}"#,
            br#"{"name": "a", "size": "small", "size": "small"}"#,
            br#"{"name": "a", "size": "small", "duration": 1, "duration": 2}"#,
            br#"{"name": "a", "size": "small", "status": "x", "status": "y"}"#,
            br#"{"name": "a", "size": "small", "violations": [], "violations": []}"#,
            br#"{"name": "a", "size": "small", "duration": 1e400}"#,
            br#"{"name": "a", "size": "small", "duration": -1e400}"#,
            br#"{"name": "a", "size": "small", "duration": 1.7976931348623159e308}"#,
            br#"{"name": "a", "size": "small", "duration": 0.000000000000000000000000000000000000000001}"#,
            br#"{"name": "a", "size": "small", "duration": +1}"#,
            br#"{"name": "a", "size": "small", "duration": .5}"#,
            br#"{"name": "a", "size": "small", "duration": 01}"#,
            br#"{"name": "a", "size": "small", "duration": 1.}"#,
            br#"{"name": "a", "size": "small", "duration": 1.e5}"#,
            br#"{"name": "a", "size": "small", "duration": 1e}"#,
            br#"{"name": "a", "size": "small", "duration": 1e+}"#,
            br#"{"name": "a", "size": "small", "duration": -}"#,
            br#"{"name": "a", "size": "small", "duration": --1}"#,
            br#"{"name": "a", "size": "small", "duration": 0x10}"#,
            br#"{"name": "a", "size": "small", "duration": NaN}"#,
            br#"{"name": "a", "size": "small", "duration": Infinity}"#,
            br#"{"name": "a", "size": "small", "duration": 1.5x}"#,
            br#"{"name": "a", "size": "small", "duration": "1.0"}"#,
            br#"{"name": "a", "size": "small", "duration": true}"#,
            br#"{"name": "a", "size": "small", "duration": nul}"#,
            br#"{"name": "a", "size": "small", "duration": nulll}"#,
            br#"{"name": "a", "size": "small", "duration": [1]}"#,
            br#"{"name": "a", "size": "small", "status": True}"#,
            br#"{"name": "a", "size": "small", "status": {"x": 1}}"#,
            br#"{"name": "a", "size": "small", "status": []}"#,
            br#"{"name": "a", "size": "small", "other": {"n": [1, {"m": 2}]}}"#,
            br#"{"name": "a", "size": "small", "other": 01}"#,
            br#"{"name": "a", "size": "small", "more": []}"#,
            br#"{"name": "a", "size": "small", "violations": ["timing", 1]}"#,
            br#"{"name": "a", "size": "small", "violations": [["timing"]]}"#,
            br#"{"name": "a", "size": "small", "violations": ["timing",]}"#,
            br#"{"name": "a", "size": "small", "violations": "timing"}"#,
            br#"{"name": "a", "size": "small", "violations": null}"#,
            br#"{"name": "a", "size": "small", "violations": ["timing" "x"]}"#,
            br#"{"name": "a", "size": 3}"#,
            br#"{"name": null, "size": "small"}"#,
            br#"{"name": ["a"], "size": "small"}"#,
            br#"{"size": "small"}"#,
            br#"{"name": "a"}"#,
            br#"{}"#,
            br#"{"name": "a", "size": "small",}"#,
            br#"{"name": "a", "size": "small" "status": "x"}"#,
            br#"{"name" "a", "size": "small"}"#,
            br#"{"name": "a"; "size": "small"}"#,
            br#"{name: "a", "size": "small"}"#,
            br#"1"#,
            br#""x""#,
            br#"null"#,
            br#"[]"#,
        ];
        let mut d = Doc::new();
        for e in declined {
            // Declined: the lane takes the usual entry after it only if the read goes on.
            let (n, ok) = d.check_ok(&doc(e));
            let want = if ok { 2 } else { 1 };
            assert_eq!(n, want, "{}", String::from_utf8_lossy(e));
        }
        // Taken, but the document is malformed just after it.
        let e = br#"{"name": "a", "size": "small"}}"#;
        assert_eq!(d.check_ok(&doc(e)), (2, false));
        // An entry longer than the lane reads ahead.
        let long = format!(r#"{{"name": "{}", "size": "small"}}"#, "x".repeat(100_000));
        assert_eq!(d.check(&doc(long.as_bytes())), 2);
    }

    #[test]
    fn every_cut_of_a_report_agrees() {
        let full = doc(br#"{"violations": ["timing", "hermeticity:process"], "name": "x", "size": "medium", "duration": 1.25e-3, "status": null, "k": false}"#);
        let mut d = Doc::new();
        assert_eq!(d.check(&full), 3);
        for cut in 0..full.len() {
            d.check(&full[..cut]);
        }
    }

    /// Random edits of a report: whatever the lane takes, it takes as serde_json would.
    #[test]
    fn random_edits_agree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = doc(br#"{"name": "a.py::t[x]", "size": "large", "duration": 12.5e-1, "status": "passed", "violations": ["timing", "hermeticity:database"], "extra": -0}"#);
        let alphabet = b"{}[]:,\"\\ \n0123456789.eE+-aeflnrstuxz\x01\xc3\xa9";
        let mut d = Doc::new();
        let mut taken = 0;
        for _ in 0..3000 {
            let mut b = base.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                let c = alphabet[rng.random_range(0..alphabet.len())];
                match rng.random_range(0..3) {
                    0 => b[i] = c,
                    1 => b.insert(i, c),
                    _ => {
                        b.remove(i);
                    }
                }
            }
            taken += d.check(&b);
        }
        assert!(taken > 3000, "the lane took only {taken} entries");
    }

    #[test]
    fn eight_digits_at_a_time() {
        assert_eq!(fast::lane_eight_digits(b"12345678"), Some(12_345_678));
        assert_eq!(fast::lane_eight_digits(b"00000000"), Some(0));
        assert_eq!(fast::lane_eight_digits(b"99999999"), Some(99_999_999));
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..100_000 {
            let mut b = [0u8; 8];
            for c in &mut b {
                *c = if rng.random_bool(0.9) {
                    b'0' + rng.random_range(0..10u8)
                } else {
                    rng.random()
                };
            }
            let want = b
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| b.iter().fold(0u64, |v, c| v * 10 + u64::from(c - b'0')));
            assert_eq!(fast::lane_eight_digits(&b), want, "{b:?}");
        }
    }

    /// The lane's `duration` is serde_json's, bit for bit, whenever it takes one.
    #[test]
    fn durations_convert_as_serde_json_does() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "0e0",
            "-0e-5",
            "1",
            "-1",
            "5e-324",
            "4.9e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "2.2250738585072011e-308",
            "2.2250738585072012e-308",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "9007199254740993",
            "9007199254740992.5",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1",
            "0.30000000000000004",
            "1e-5",
            "1E+2",
            "1e400",
            "1e-400",
            "0e400",
            "00",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "-",
            "1.5e3",
            "123456789012345678901234567890",
            "0.000000000000000000000000000000000000001",
            "0.4141274800290968",
            "0.00013754391097760212",
            "2.0427319893262514",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..100_000 {
            let mut s = String::new();
            if rng.random_bool(0.2) {
                s.push('-');
            }
            let digits = rng.random_range(1..25);
            for k in 0..digits {
                let d = rng.random_range(0..10u8);
                s.push((b'0' + if k == 0 && digits > 1 { d.max(1) } else { d }) as char);
            }
            if rng.random_bool(0.7) {
                s.push('.');
                for _ in 0..rng.random_range(1..20) {
                    s.push((b'0' + rng.random_range(0..10u8)) as char);
                }
            }
            if rng.random_bool(0.4) {
                s.push(if rng.random_bool(0.5) { 'e' } else { 'E' });
                match rng.random_range(0..3) {
                    0 => s.push('-'),
                    1 => s.push('+'),
                    _ => {}
                }
                let e = if rng.random_bool(0.5) {
                    rng.random_range(0..30)
                } else {
                    rng.random_range(0..400)
                };
                s.push_str(&e.to_string());
            }
            cases.push(s);
        }
        let (mut taken, mut exact) = (0, 0);
        for s in &cases {
            let serde = serde_json::from_str::<Option<f64>>(s).ok();
            if let Some(lane) = fast::lane_duration(s.as_bytes()) {
                taken += 1;
                exact += usize::from(fast::lane_exact(s.as_bytes()).is_some());
                assert_eq!(
                    lane.map(f64::to_bits),
                    serde.flatten().map(f64::to_bits),
                    "{s}: serde_json {serde:?}"
                );
                assert!(serde.is_some(), "{s}");
            }
        }
        assert!(taken > cases.len() / 2, "taken {taken}");
        assert!(exact > cases.len() / 5, "exact {exact}");
        assert_eq!(
            fast::lane_exact(b"0.4141274800290968"),
            Some(0.4141274800290968)
        );
        assert_eq!(fast::lane_exact(b"2.0427319893262514"), None);
        assert_eq!(fast::lane_duration(b"null"), Some(None));
        assert_eq!(fast::lane_duration(b"0.5"), Some(Some(0.5)));
    }

    #[test]
    fn whitespace_over_the_token_limit_ends_both_readers_the_same_way() {
        let entry = r#"{"name": "t.py::a", "size": "small", "duration": 0.5, "status": "passed", "violations": []}"#;
        let pad = " ".repeat(MAX_JSON_TOKEN as usize + 10);
        let mut d = Doc::new();
        // Between entries, and before the document's end.
        let (_, ok) = d.check_ok(format!(r#"{{"tests": [{entry},{pad}{entry}]}}"#).as_bytes());
        assert!(!ok, "more than 4 MiB without a quote is refused");
        let (_, ok) = d.check_ok(format!(r#"{{"tests": [{entry}]}}{pad}"#).as_bytes());
        assert!(!ok);
        // Just under the limit is fine.
        let pad = " ".repeat(1 << 20);
        let (taken, ok) = d.check_ok(format!(r#"{{"tests": [{entry},{pad}{entry}]}}"#).as_bytes());
        assert!(ok);
        assert!(taken >= 1);
    }
}
