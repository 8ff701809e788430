//! The fast reader of [`read_json`](super::read_json): the plugin's usual `tests` entries read
//! by a hand-written lane straight from the buffer, everything else split out and handed to
//! serde_json. `None` means "let the streaming reader do it".

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
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
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
                _ => with_value(r, |b| serde_json::from_slice::<IgnoredAny>(b).ok()).map(|_| ())?,
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
