//! The Host field's value (RFC 9112 §3.2): `uri-host [ ":" port ]`, where `uri-host` is
//! an IP literal in brackets, or a reg-name (RFC 3986 §3.2.2, which also spells every
//! IPv4 address). An empty value is valid: it is what a client sends for a target
//! without an authority.
//!
//! One deviation, on the strict side: a comma, which RFC 3986 allows in a reg-name, is
//! refused. No DNS name holds one, and a Host that reads as a list (`a, b`, or two Host
//! lines folded by a proxy) names no single host to route by.

/// Whether `value` (already trimmed of surrounding whitespace) is a valid Host.
#[inline(never)]
pub fn valid(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(close) => {
                if !ip_literal(&value[1..close]) {
                    return false;
                }
                match &value[close + 1..] {
                    [] => return true,
                    [b':', port @ ..] => (&[][..], port),
                    _ => return false,
                }
            }
            None => return false,
        },
        _ => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &[][..]),
        },
    };
    reg_name(host) && valid_port(port)
}

/// `*DIGIT`, and at most 65535: a port that no socket can have is no port.
fn valid_port(port: &[u8]) -> bool {
    port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
}

/// `*( unreserved / pct-encoded / sub-delims )`, without the comma.
fn reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b == b'%' {
            match name.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
            continue;
        }
        if !(unreserved(b) || (sub_delim(b) && b != b',')) {
            return false;
        }
        i += 1;
    }
    true
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Inside the brackets: an IPv6 address, or `IPvFuture` (`v` 1*HEXDIG `.` then
/// unreserved, sub-delims or `:`).
fn ip_literal(inner: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inner {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| unreserved(b) || sub_delim(b) || b == b':');
    }
    std::str::from_utf8(inner).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn names_addresses_literals_and_ports_are_valid() {
        for good in [
            "a",
            "a:80",
            "a:",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "[2001:db8::7]",
            "[v1.fe80::a+en1]",
            "xn--caf-dma.example",
            "localhost:65535",
            "my_host.example",
            "a%20b",
            "",
        ] {
            assert!(valid(good.as_bytes()), "{good:?} should be valid");
        }
    }

    #[test]
    fn lists_spaces_paths_userinfo_and_bad_literals_are_not() {
        for bad in [
            "a, b",
            "a,b",
            "a b",
            "a/b",
            "user@a",
            "a?b",
            "a#b",
            "a:b",
            "a:65536",
            "a:123456",
            "a:8080:80",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[not-v6]",
            "[v.x]",
            "a%2",
            "a%zz",
            "a\"b",
            "a\\b",
        ] {
            assert!(!valid(bad.as_bytes()), "{bad:?} should be invalid");
        }
    }
}
