//! Values with units on the command line: durations (`200ms`, `15s`), sizes (`4KiB`)
//! and source-address lists (`127.0.0.2-127.0.0.17`).

use std::net::Ipv4Addr;
use std::time::Duration;

/// `200ms`, `15s`, `2m`, `1h`, or plain seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 200ms, 15s, 2m"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "" | "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !(0.0..=1e7).contains(&secs) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `64`, `4KiB`, `1MiB` (also `k`/`KB`/`M`, all binary).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: usize = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 64, 4KiB, 1MiB"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (KiB, MiB)")),
    };
    v.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// `127.0.0.2-127.0.0.17` (inclusive), `127.0.0.2,127.0.0.3`, or a mix.
pub fn parse_ip_list(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip = |x: &str| {
            x.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| format!("{x:?}: not an IPv4 address"))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (u32::from(ip(a)?), u32::from(ip(b)?)),
            None => (u32::from(ip(part)?), u32::from(ip(part)?)),
        };
        if a > b || b - a > 65_535 {
            return Err(format!(
                "{part:?}: range must go up and span at most 65536 addresses"
            ));
        }
        out.extend((a..=b).map(Ipv4Addr::from));
    }
    if out.is_empty() {
        return Err("no address given".into());
    }
    if let Some(bad) = out.iter().find(|ip| !ip.is_loopback()) {
        return Err(format!(
            "{bad}: source addresses must be in 127.0.0.0/8 (loopback)"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! parse_tests {
        ($($name:ident: $f:ident($input:expr) => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!($f($input), $want);
            }
        )*};
    }

    parse_tests! {
        dur_ms: parse_duration("200ms") => Ok(Duration::from_millis(200));
        dur_s: parse_duration("15s") => Ok(Duration::from_secs(15));
        dur_plain: parse_duration("1.5") => Ok(Duration::from_millis(1500));
        dur_min: parse_duration("2m") => Ok(Duration::from_secs(120));
        size_kib: parse_size("4KiB") => Ok(4096);
        size_plain: parse_size("64") => Ok(64);
        size_mib: parse_size("1MiB") => Ok(1 << 20);
        ips_range: parse_ip_list("127.0.0.2-127.0.0.4") => Ok(vec![[127, 0, 0, 2].into(), [127, 0, 0, 3].into(), [127, 0, 0, 4].into()]);
        ips_list: parse_ip_list("127.0.0.2,127.0.0.9") => Ok(vec![[127, 0, 0, 2].into(), [127, 0, 0, 9].into()]);
    }
}
