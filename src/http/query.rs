//! Query strings: `application/x-www-form-urlencoded` pairs, percent-decoded.

use std::borrow::Cow;

/// A query that is not well formed (a `%` not followed by two hex digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEncoding;

/// One decoded `key=value` pair.
pub type Pair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Iterates `key=value` pairs separated by `&`, decoding `%XX` and `+` (a space), as
/// browsers' `URLSearchParams` does. Pairs without `=` have an empty value; empty pairs
/// (`a=1&&b=2`) are skipped.
pub fn pairs(query: &[u8]) -> impl Iterator<Item = Result<Pair<'_>, BadEncoding>> {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Ok((decode(key)?, decode(value)?))
        })
}

/// Percent-decodes one component, borrowing when there is nothing to decode.
pub fn decode(raw: &[u8]) -> Result<Cow<'_, [u8]>, BadEncoding> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex(b)).ok_or(BadEncoding)?;
                let lo = raw.get(i + 2).and_then(|&b| hex(b)).ok_or(BadEncoding)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(Cow::Owned(out))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(q: &str) -> Result<Vec<(String, String)>, BadEncoding> {
        pairs(q.as_bytes())
            .map(|r| {
                r.map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
            })
            .collect()
    }

    macro_rules! queries {
        ($($q:expr => $want:expr;)*) => {
            $(
                let want: Result<Vec<(String, String)>, BadEncoding> =
                    $want.map(|v: Vec<(&str, &str)>| v.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
                assert_eq!(collect($q), want, "query {:?}", $q);
            )*
        };
    }

    #[test]
    fn pairs_decode_like_url_search_params() {
        queries! {
            "topic=a" => Ok(vec![("topic", "a")]);
            "topic=a&topic=b" => Ok(vec![("topic", "a"), ("topic", "b")]);
            "topic=a%2Fb" => Ok(vec![("topic", "a/b")]);
            "topic=a+b" => Ok(vec![("topic", "a b")]);
            "a&&b=" => Ok(vec![("a", ""), ("b", "")]);
            "k=v=w" => Ok(vec![("k", "v=w")]);
            "%74opic=x" => Ok(vec![("topic", "x")]);
            "" => Ok(vec![]);
            "topic=%zz" => Err(BadEncoding);
            "topic=%4" => Err(BadEncoding);
            "topic=%" => Err(BadEncoding);
        }
    }
}
