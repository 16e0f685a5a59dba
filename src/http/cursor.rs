//! 16-bytes-at-a-time scans over the request head: where a run of field-value bytes ends,
//! where a request-target ends, where the next LF is.
//!
//! On x86_64 these use SSE2, which every x86_64 CPU has, so there is no run-time feature
//! detection. Elsewhere they fall back to the byte-class tables of [`super::token`]. Both
//! paths answer the same question, and the tests below check them against each other.

use super::token::{FIELD_VALUE, TARGET};

/// The width of one vector step, in bytes.
const LANES: usize = 16;

/// The index of the first byte at or after `from` that is not a field-value byte
/// (HTAB, SP, VCHAR, obs-text), or `buf.len()` if there is none.
#[inline(always)]
pub(crate) fn value_end(buf: &[u8], from: usize) -> usize {
    let mut i = from;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(block) = block_at(buf, i) {
        let stop = sse2::not_value(block);
        if stop != 0 {
            return i + stop.trailing_zeros() as usize;
        }
        i += LANES;
    }
    scalar_end(buf, i, &FIELD_VALUE)
}

/// The index of the first byte at or after `from` that is not visible ASCII
/// (0x21..=0x7E), or `buf.len()`.
#[inline(always)]
pub(crate) fn target_end(buf: &[u8], from: usize) -> usize {
    let mut i = from;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(block) = block_at(buf, i) {
        let stop = sse2::not_visible(block);
        if stop != 0 {
            return i + stop.trailing_zeros() as usize;
        }
        i += LANES;
    }
    scalar_end(buf, i, &TARGET)
}

/// The index of the first LF at or after `from`.
#[inline]
pub(crate) fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(block) = block_at(buf, i) {
        let hits = sse2::eq_lf(block);
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize);
        }
        i += LANES;
    }
    let tail = buf.get(i..)?;
    tail.iter().position(|&b| b == b'\n').map(|p| i + p)
}

/// The first index at or after `i` whose byte is not in `class`, or `buf.len()`.
#[inline(always)]
fn scalar_end(buf: &[u8], i: usize, class: &[bool; 256]) -> usize {
    match buf.get(i..) {
        Some(tail) => tail
            .iter()
            .position(|&b| !class[usize::from(b)])
            .map_or(buf.len(), |p| i + p),
        None => buf.len(),
    }
}

/// The 16 bytes at `i`, if the buffer has that many left.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn block_at(buf: &[u8], i: usize) -> Option<&[u8; LANES]> {
    buf.get(i..i.checked_add(LANES)?)?.try_into().ok()
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    //! Each function returns a 16-bit mask with bit `k` set when byte `k` is a stop byte.
    //!
    //! The intrinsics are `unsafe` to call outside a `#[target_feature]` function. This
    //! module only compiles where SSE2 is enabled for the whole build (the x86_64
    //! baseline), so every call below runs on a CPU that has the instructions.
    use core::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
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

    #[inline(always)]
    pub(super) fn eq_lf(block: &[u8; super::LANES]) -> u32 {
        // SAFETY: as in `not_value`.
        let hits = unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(b'\n' as i8)))
        };
        hits as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, at every position of a 40-byte run (so both the vector loop and
    /// the scalar tail see it), stops each scan exactly when its table says it should.
    #[test]
    fn vector_scans_agree_with_the_tables() {
        for b in 0..=255u8 {
            for pos in 0..40 {
                let mut buf = [b'a'; 40];
                buf[pos] = b;
                let value = if FIELD_VALUE[usize::from(b)] { 40 } else { pos };
                let target = if TARGET[usize::from(b)] { 40 } else { pos };
                let lf = (b == b'\n').then_some(pos);
                assert_eq!(
                    value_end(&buf, 0),
                    value,
                    "value_end, byte {b:#04x} at {pos}"
                );
                assert_eq!(
                    target_end(&buf, 0),
                    target,
                    "target_end, byte {b:#04x} at {pos}"
                );
                assert_eq!(find_lf(&buf, 0), lf, "find_lf, byte {b:#04x} at {pos}");
            }
        }
    }

    #[test]
    fn scans_start_at_from_and_tolerate_out_of_range() {
        let buf = b"\n\x00aaaa";
        assert_eq!(value_end(buf, 2), buf.len());
        assert_eq!(value_end(buf, 1), 1);
        assert_eq!(target_end(buf, 9), buf.len());
        assert_eq!(find_lf(buf, 1), None);
        assert_eq!(find_lf(buf, 99), None);
    }
}
