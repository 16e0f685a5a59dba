//! 16-bytes-at-a-time scans over the request head: where a run of field-value bytes ends,
//! where a request-target ends, where a field name's common bytes end, where a byte is.
//!
//! On x86_64 the blocks are classified with SSE2, which every x86_64 CPU has, so there
//! is no run-time feature detection; this is the only `unsafe` code of `http`.
//! Elsewhere a portable module classifies them with the byte-class tables of
//! [`super::token`]. Buffers shorter than a block use the tables directly, and the tests
//! check every path against them.

#![allow(unsafe_code)] // one of the three homes of `unsafe` (see lib.rs): SSE2 intrinsics

use super::token::{FIELD_VALUE, NAME_FAST, TARGET};

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use sse2 as block;

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
use portable as block;

/// The width of one block, in bytes.
const LANES: usize = 16;

/// The index of the first byte at or after `from` that is not a field-value byte
/// (HTAB, SP, VCHAR, obs-text), or `buf.len()` if there is none.
#[inline(always)]
pub(crate) fn value_end(buf: &[u8], from: usize) -> usize {
    scan(buf, from, block::not_value, |b| {
        !FIELD_VALUE[usize::from(b)]
    })
}

/// The index of the first byte at or after `from` that is not visible ASCII
/// (0x21..=0x7E), or `buf.len()`.
#[inline(always)]
pub(crate) fn target_end(buf: &[u8], from: usize) -> usize {
    scan(buf, from, block::not_visible, |b| !TARGET[usize::from(b)])
}

/// The index of the first byte at or after `from` that is not a letter, digit or `-`
/// (the bytes of nearly every real field name), or `buf.len()`.
#[inline(always)]
pub(crate) fn name_run_end(buf: &[u8], from: usize) -> usize {
    scan(buf, from, block::not_name_fast, |b| {
        !NAME_FAST[usize::from(b)]
    })
}

/// The index of the first `byte` at or after `from`, or `buf.len()`.
#[inline(always)]
pub(crate) fn find_byte(buf: &[u8], from: usize, byte: u8) -> usize {
    scan(buf, from, |bytes| block::eq(bytes, byte), |b| b == byte)
}

/// The first index at or after `from` that is a stop, or `buf.len()`. `stops` classifies
/// a block (bit `k` set when byte `k` is a stop), `stop` one byte.
///
/// When fewer than 16 bytes are left, it classifies the buffer's last 16 bytes instead and
/// drops the bits of the bytes before `from`, so only a buffer shorter than 16 bytes
/// goes byte by byte.
#[inline(always)]
fn scan(
    buf: &[u8],
    from: usize,
    stops: impl Fn(&[u8; LANES]) -> u32,
    stop: impl Fn(u8) -> bool,
) -> usize {
    let mut i = from;
    while let Some(bytes) = block_at(buf, i) {
        let hits = stops(bytes);
        if hits != 0 {
            return i + hits.trailing_zeros() as usize;
        }
        i += LANES;
    }
    if i >= buf.len() {
        return buf.len();
    }
    let last = buf.len().saturating_sub(LANES);
    match block_at(buf, last) {
        // `i > last` here, and `i - last < 16`.
        Some(bytes) => match stops(bytes) >> (i - last) {
            0 => buf.len(),
            hits => i + hits.trailing_zeros() as usize,
        },
        None => buf[i..]
            .iter()
            .position(|&b| stop(b))
            .map_or(buf.len(), |p| i + p),
    }
}

/// The 16 bytes at `i`, if the buffer has that many left.
#[inline(always)]
fn block_at(buf: &[u8], i: usize) -> Option<&[u8; LANES]> {
    buf.get(i..i.checked_add(LANES)?)?.try_into().ok()
}

/// The block classifiers without SIMD: a table lookup per byte.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
mod portable {
    use super::LANES;
    use crate::http::token::{FIELD_VALUE, NAME_FAST, TARGET};

    fn mask(bytes: &[u8; LANES], stop: impl Fn(u8) -> bool) -> u32 {
        bytes
            .iter()
            .enumerate()
            .fold(0, |m, (k, &b)| m | u32::from(stop(b)) << k)
    }

    pub(super) fn not_value(bytes: &[u8; LANES]) -> u32 {
        mask(bytes, |b| !FIELD_VALUE[usize::from(b)])
    }

    pub(super) fn not_visible(bytes: &[u8; LANES]) -> u32 {
        mask(bytes, |b| !TARGET[usize::from(b)])
    }

    pub(super) fn not_name_fast(bytes: &[u8; LANES]) -> u32 {
        mask(bytes, |b| !NAME_FAST[usize::from(b)])
    }

    pub(super) fn eq(bytes: &[u8; LANES], byte: u8) -> u32 {
        mask(bytes, |b| b == byte)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    //! Each function returns a 16-bit mask with bit `k` set when byte `k` is a stop byte.
    //!
    //! The intrinsics are `unsafe` to call outside a `#[target_feature]` function. This
    //! module only compiles where SSE2 is enabled for the whole build (the x86_64
    //! baseline), so every call below runs on a CPU that has the instructions.
    use core::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8,
        _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    /// Stop bytes for a field value: below 0x20 except HTAB, and DEL.
    #[inline(always)]
    pub(super) fn not_value(block: &[u8; super::LANES]) -> u32 {
        // SAFETY: SSE2 is enabled at compile time (see the module doc); the load reads
        // exactly the 16 bytes of `block`, and `_mm_loadu_si128` needs no alignment.
        let ok = unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            // x >= 0x20 unsigned: max(x, 0x20) == x.
            let printable = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x20)), x);
            let del = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f));
            let tab = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\t' as i8));
            _mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(del, printable), tab))
        };
        !(ok as u32) & 0xffff
    }

    /// Stop bytes for a request-target: anything outside 0x21..=0x7E.
    #[inline(always)]
    pub(super) fn not_visible(block: &[u8; super::LANES]) -> u32 {
        // SAFETY: as in `not_value`.
        let ok = unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            // As signed bytes, 0x21..=0x7E is exactly 0x20 < x < 0x7F; 0x80.. are negative.
            let above = _mm_cmplt_epi8(_mm_set1_epi8(0x20), x);
            let below = _mm_cmplt_epi8(x, _mm_set1_epi8(0x7f));
            _mm_movemask_epi8(_mm_and_si128(above, below))
        };
        !(ok as u32) & 0xffff
    }

    /// Stop bytes for the common field-name bytes: anything but `A-Z a-z 0-9 -`.
    #[inline(always)]
    pub(super) fn not_name_fast(block: &[u8; super::LANES]) -> u32 {
        // SAFETY: as in `not_value`.
        let ok = unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            // A range check as one signed compare: shift the range's start down to -128.
            let lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
            let alpha = _mm_cmplt_epi8(
                _mm_add_epi8(lower, _mm_set1_epi8((0x80u8 - b'a') as i8)),
                _mm_set1_epi8(-128 + 26),
            );
            let digit = _mm_cmplt_epi8(
                _mm_add_epi8(x, _mm_set1_epi8((0x80u8 - b'0') as i8)),
                _mm_set1_epi8(-128 + 10),
            );
            let dash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'-' as i8));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(alpha, digit), dash))
        };
        !(ok as u32) & 0xffff
    }

    /// Bytes equal to `byte`.
    #[inline(always)]
    pub(super) fn eq(block: &[u8; super::LANES], byte: u8) -> u32 {
        // SAFETY: as in `not_value`.
        let hits = unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(byte as i8)))
        };
        hits as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, at every position of runs of several lengths (so the vector
    /// loop, the overlapping last block and the short-buffer path all see it), stops
    /// each scan exactly where its table says it should, from every start.
    #[test]
    fn vector_scans_agree_with_the_tables() {
        for len in [5, 16, 17, 31, 32, 33, 40, 70] {
            for b in 0..=255u8 {
                for pos in 0..len {
                    let mut buf = vec![b'a'; len];
                    buf[pos] = b;
                    for from in [0, pos.saturating_sub(3), pos, pos + 1] {
                        let want = |stop: bool| if stop && from <= pos { pos } else { len };
                        let at = format!("byte {b:#04x} at {pos} of {len}, from {from}");
                        assert_eq!(
                            value_end(&buf, from),
                            want(!FIELD_VALUE[usize::from(b)]),
                            "value_end, {at}"
                        );
                        assert_eq!(
                            target_end(&buf, from),
                            want(!TARGET[usize::from(b)]),
                            "target_end, {at}"
                        );
                        assert_eq!(
                            name_run_end(&buf, from),
                            want(!NAME_FAST[usize::from(b)]),
                            "name_run_end, {at}"
                        );
                        assert_eq!(
                            find_byte(&buf, from, b'?'),
                            want(b == b'?'),
                            "find_byte, {at}"
                        );
                    }
                }
            }
        }
    }

    /// The SSE2 classifiers and the portable ones agree on every byte at every lane.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn sse2_blocks_agree_with_portable_blocks() {
        for b in 0..=255u8 {
            for lane in 0..LANES {
                let mut bytes = [b'a'; LANES];
                bytes[lane] = b;
                let at = format!("byte {b:#04x} in lane {lane}");
                assert_eq!(sse2::not_value(&bytes), portable::not_value(&bytes), "{at}");
                assert_eq!(
                    sse2::not_visible(&bytes),
                    portable::not_visible(&bytes),
                    "{at}"
                );
                assert_eq!(
                    sse2::not_name_fast(&bytes),
                    portable::not_name_fast(&bytes),
                    "{at}"
                );
                assert_eq!(sse2::eq(&bytes, b'?'), portable::eq(&bytes, b'?'), "{at}");
            }
        }
    }

    #[test]
    fn scans_tolerate_a_start_past_the_end() {
        let buf = b"\n\x00aaaa";
        assert_eq!(value_end(buf, 2), buf.len());
        assert_eq!(value_end(buf, 1), 1);
        assert_eq!(target_end(buf, 9), buf.len());
        assert_eq!(find_byte(buf, 1, b'\n'), buf.len());
        assert_eq!(find_byte(buf, 99, b'\n'), buf.len());
    }
}
