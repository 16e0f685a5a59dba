//! The data of every event loadgen publishes: `"<seq> <send_mono_ns> "` padded with
//! `x` to the payload size. Loss and duplicate checks rest on `seq` (per topic, from 1),
//! never on the server's ids, so any SSE server can be measured; latency rests on the
//! send time, comparable across processes because CLOCK_MONOTONIC is host-wide. Only
//! digits, spaces and `x` appear, so the data is safe inside a JSON body template.

/// Writes the data of event `seq` sent at `sent_ns`, padded to `size` bytes (never
/// shorter than the two numbers and their spaces), into `out` (cleared first).
pub fn encode(seq: u64, sent_ns: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    push_decimal(out, seq);
    out.push(b' ');
    push_decimal(out, sent_ns);
    out.push(b' ');
    if out.len() < size {
        out.resize(size, b'x');
    }
}

/// Reads `(seq, sent_ns)` back from event data; `None` for data loadgen did not write.
#[inline]
pub fn decode(data: &[u8]) -> Option<(u64, u64)> {
    let (seq, rest) = take_decimal(data)?;
    let rest = rest.strip_prefix(b" ")?;
    let (sent_ns, rest) = take_decimal(rest)?;
    if !(rest.is_empty() || rest[0] == b' ') {
        return None;
    }
    Some((seq, sent_ns))
}

fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[inline]
fn take_decimal(s: &[u8]) -> Option<(u64, &[u8])> {
    let len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    let v = s[..len]
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    Some((v, &s[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! decode_tests {
        ($($name:ident: $input:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(decode($input), $want);
            }
        )*};
    }

    decode_tests! {
        plain: b"1 2 " => Some((1, 2));
        padded: b"42 123456789 xxxxxxxx" => Some((42, 123456789));
        no_padding: b"7 8" => Some((7, 8));
        foreign_text: b"hello" => None;
        one_number: b"12 " => None;
        junk_after: b"1 2x" => None;
        too_long: b"12345678901234567890 1 " => None;
        empty: b"" => None;
    }

    #[test]
    fn round_trip_and_size() {
        let mut out = Vec::new();
        for (seq, ns, size) in [
            (1, 5, 0),
            (u32::MAX as u64, 9_999_999_999_999, 64),
            (3, 0, 1024),
        ] {
            encode(seq, ns, size, &mut out);
            assert_eq!(decode(&out), Some((seq, ns)));
            assert!(
                out.len() >= size && (out.len() == size || size < 25),
                "len {} size {size}",
                out.len()
            );
        }
    }
}
