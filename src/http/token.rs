//! Byte classes of the request head (RFC 9112 / RFC 9110), as 256-entry tables built at
//! compile time, and the case-insensitive name comparison used to recognise headers.
//!
//! One table lookup per byte is the fallback; the 16-byte scans in [`super::cursor`] use
//! the same definitions, and the tests below check the two agree on every byte.

/// Builds a byte-class table from a predicate, at compile time.
macro_rules! byte_class {
    ($($pat:pat_param)|+) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            table[i] = matches!(i as u8, $($pat)|+);
            i += 1;
        }
        table
    }};
}

/// `tchar` (RFC 9110 §5.6.2): the bytes of a method, a field name, a chunk-extension name.
pub(crate) static TCHAR: [bool; 256] = byte_class!(
    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
        | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
);

/// Field-value bytes (RFC 9110 §5.5): HTAB, SP, VCHAR and obs-text. Everything else (NUL,
/// the other controls, DEL) is an error, except that CR ends the line.
pub(crate) static FIELD_VALUE: [bool; 256] = byte_class!(b'\t' | b' '..=0x7e | 0x80..=0xff);

/// The field-name bytes worth a fast path: letters, digits and `-`. Any other tchar
/// (`_`, `.`, `!`...) is rare and takes the table.
pub(crate) static NAME_FAST: [bool; 256] =
    byte_class!(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-');

/// Request-target bytes: visible ASCII only. Stricter than httparse, which also takes
/// UTF-8 above 0x7F; a server that routes on the target has no use for raw non-ASCII.
pub(crate) static TARGET: [bool; 256] = byte_class!(0x21..=0x7e);

/// `qdtext` of a quoted-string (RFC 9110 §5.6.4), used by chunk extensions.
pub(crate) static QDTEXT: [bool; 256] =
    byte_class!(b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff);

#[inline(always)]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

#[inline(always)]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Compares a field name with a lower-case name made of letters and `-` only.
///
/// OR-ing 0x20 folds `A-Z` onto `a-z` and leaves `a-z` and `-` alone. The only other byte
/// it maps onto one of those is CR (0x0D, onto `-`), which is not a tchar, and `name` has
/// been checked to be a token already, so the fold is exact here. No early exit, so the
/// comparison of a known-length name compiles to a few wide loads.
#[inline(always)]
pub(crate) fn eq_name(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .fold(0u8, |acc, (&a, &b)| acc | ((a | 0x20) ^ b))
            == 0
}

/// ASCII case-insensitive equality, for header values such as `chunked` and `close`.
#[inline]
pub(crate) fn eq_ignore_case(value: &[u8], lower: &[u8]) -> bool {
    value.eq_ignore_ascii_case(lower)
}

/// Trims optional whitespace (SP / HTAB) from both ends.
#[inline]
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_name_is_exact_on_tokens() {
        // Every tchar byte folded by eq_name matches exactly the bytes ASCII case folding does.
        for a in 0..=255u8 {
            if !is_tchar(a) {
                continue;
            }
            for &b in b"abcdefghijklmnopqrstuvwxyz-" {
                let want = a.to_ascii_lowercase() == b;
                assert_eq!(eq_name(&[a], &[b]), want, "byte {a:#04x} vs {}", b as char);
            }
        }
        assert!(eq_name(b"Content-Length", b"content-length"));
        assert!(!eq_name(b"Content-Lengthx", b"content-length"));
        assert!(!eq_name(b"Content_Length", b"content-length"));
    }

    #[test]
    fn trim_ows_trims_both_ends_only() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }
}
