//! Structured logs on stderr: one line per record, as `key=value` pairs (logfmt) or
//! JSON, with the `log` crate's key-values as fields.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Logfmt,
    Json,
}

struct Logger {
    format: Format,
    level: LevelFilter,
}

/// Installs the logger once; later calls are ignored.
pub fn init(format: Format, level: LevelFilter) {
    if log::set_boxed_logger(Box::new(Logger { format, level })).is_ok() {
        log::set_max_level(level);
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match self.format {
            Format::Logfmt => logfmt(record),
            Format::Json => json(record),
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

fn logfmt(record: &Record<'_>) -> String {
    let mut out = format!(
        "ts={} level={} msg=",
        timestamp(),
        level_name(record.level())
    );
    logfmt_value(&record.args().to_string(), &mut out);
    struct Fields<'a>(&'a mut String);
    impl<'kvs> VisitSource<'kvs> for Fields<'_> {
        fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
            let _ = write!(self.0, " {key}=");
            logfmt_value(&value.to_string(), self.0);
            Ok(())
        }
    }
    let _ = record.key_values().visit(&mut Fields(&mut out));
    out.push('\n');
    out
}

fn logfmt_value(v: &str, out: &mut String) {
    if !v.is_empty()
        && !v
            .bytes()
            .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f)
    {
        out.push_str(v);
    } else {
        let _ = write!(out, "{v:?}");
    }
}

fn json(record: &Record<'_>) -> String {
    let mut out = String::from("{\"ts\":\"");
    out.push_str(&timestamp());
    let _ = write!(
        out,
        "\",\"level\":\"{}\",\"msg\":",
        level_name(record.level())
    );
    json_string(&record.args().to_string(), &mut out);
    struct Fields<'a>(&'a mut String);
    impl<'kvs> VisitSource<'kvs> for Fields<'_> {
        fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
            self.0.push(',');
            json_string(key.as_str(), self.0);
            self.0.push(':');
            match value.to_u64() {
                Some(n) => {
                    let _ = write!(self.0, "{n}");
                }
                None => json_string(&value.to_string(), self.0),
            }
            Ok(())
        }
    }
    let _ = record.key_values().visit(&mut Fields(&mut out));
    out.push_str("}\n");
    out
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    crate::json::json_escape(s, out);
    out.push('"');
}

/// RFC 3339 UTC with milliseconds, without a date library.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
    }

    #[test]
    fn logfmt_quotes_only_when_needed() {
        let mut s = String::new();
        logfmt_value("0.0.0.0:8080", &mut s);
        s.push(' ');
        logfmt_value("two words", &mut s);
        s.push(' ');
        logfmt_value("", &mut s);
        assert_eq!(s, "0.0.0.0:8080 \"two words\" \"\"");
    }
}
