//! Byte helpers shared by the readers' lanes (the JUnit passed-test lane and the size
//! report's entry lane): text from bytes without a second look at ASCII, and eight bytes
//! at a time ("SWAR": a `u64` word, one flag bit per byte).
//!
//! The flags come from the classic "has a zero byte" trick, `(w - 0x01…) & !w & 0x80…`.
//! A borrow only runs upwards from a byte that truly matched, so the flags are exact up
//! to and including the lowest flagged byte: the lowest flag is always a true match, and
//! flags below it are never false.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// `b` as text: ASCII without a second look, else checked as UTF-8.
pub(crate) fn as_text(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// The eight bytes at `b[at..]` as a little-endian word (the first byte lowest), if
/// eight are there.
pub(crate) fn word(b: &[u8], at: usize) -> Option<u64> {
    let w: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

/// The high bit of every byte of `w` equal to `x` (exact up to the lowest flag).
pub(crate) fn eq(w: u64, x: u8) -> u64 {
    zero(w ^ (ONES * u64::from(x)))
}

/// The high bit of every byte of `w` below `n` (`n` ≤ 0x80; exact up to the lowest flag).
pub(crate) fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
}

/// The high bit of every byte of `w` that is not ASCII.
pub(crate) fn high(w: u64) -> u64 {
    w & HIGH
}

/// The index of the byte of the lowest flag in `m` (`m` ≠ 0).
pub(crate) fn first(m: u64) -> usize {
    (m.trailing_zeros() / 8) as usize
}

/// The flags of the bytes before the lowest flag of `m` (`m` ≠ 0), as a mask.
pub(crate) fn before_first(m: u64) -> u64 {
    (m & m.wrapping_neg()) - 1
}

fn zero(w: u64) -> u64 {
    below(w, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_match_a_byte_by_byte_look() {
        let mut x: u64 = 0x243F_6A88_85A3_08D3;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bytes from a small alphabet, so that matches are common.
            let b: Vec<u8> = (0..8)
                .map(|i| {
                    [b'"', b'&', 0x1f, b' ', b'a', 0xC3, 0x00, 0x7f][((x >> (i * 3)) & 7) as usize]
                })
                .collect();
            let w = word(&b, 0).unwrap();
            for (m, pick) in [
                (eq(w, b'"'), &(|c: u8| c == b'"') as &dyn Fn(u8) -> bool),
                (eq(w, b'&'), &|c: u8| c == b'&'),
                (below(w, 0x20), &|c: u8| c < 0x20),
                (high(w), &|c: u8| c >= 0x80),
            ] {
                match b.iter().position(|c| pick(*c)) {
                    None => assert_eq!(m, 0, "{b:?}"),
                    Some(i) => {
                        assert_eq!(first(m), i, "{b:?}");
                        assert_eq!(m & before_first(m), 0);
                    }
                }
            }
        }
        assert_eq!(word(b"1234567", 0), None);
        assert_eq!(word(b"12345678", 1), None);
        assert_eq!(as_text(b"ab"), Some("ab"));
        assert_eq!(as_text("é".as_bytes()), Some("é"));
        assert_eq!(as_text(&[0xC3]), None);
    }
}
