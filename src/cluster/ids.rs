//! Redis Stream ids (`<ms>-<seq>`) as ringcast's decimal event ids.
//!
//! An id is `ms << 20 | seq`: strictly increasing exactly as the stream's ids are (the
//! order is the stream's order), decimal like every ringcast id, still increasing after a
//! restart (the stream's clock keeps going), and reversible, so a `Last-Event-ID` can be
//! turned back into a stream position for `XRANGE`. 2^20 entries per millisecond is far
//! beyond what one Redis accepts; an entry past it is refused rather than misnumbered.

/// Bits of the per-millisecond sequence.
const SEQ_BITS: u32 = 20;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// The decimal id of a stream id (`1700000000000-3`), if it is one ringcast can number.
pub fn from_stream(id: &str) -> Option<u64> {
    let (ms, seq) = id.split_once('-')?;
    let ms: u64 = ms.parse().ok()?;
    let seq: u64 = seq.parse().ok()?;
    if seq > SEQ_MASK || ms >= 1 << (64 - SEQ_BITS) {
        return None;
    }
    Some(ms << SEQ_BITS | seq)
}

/// The stream id of a decimal id.
pub fn to_stream(id: u64) -> String {
    format!("{}-{}", id >> SEQ_BITS, id & SEQ_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_the_stream_order() {
        let ids = [
            "0-0",
            "0-1",
            "1-0",
            "1700000000000-0",
            "1700000000000-1",
            "1700000000001-0",
        ];
        let decimal: Vec<u64> = ids.iter().map(|i| from_stream(i).unwrap()).collect();
        assert!(decimal.windows(2).all(|w| w[0] < w[1]), "{decimal:?}");
        for (s, d) in ids.iter().zip(&decimal) {
            assert_eq!(to_stream(*d), *s);
        }
        assert_eq!(from_stream("1-1048575"), Some((1 << 20) | 1048575));
    }

    #[test]
    fn what_cannot_be_numbered_is_refused() {
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "a-1",
            "1-b",
            "1-1048576",
            "18446744073709551615-0",
        ] {
            assert_eq!(from_stream(bad), None, "{bad}");
        }
    }
}
