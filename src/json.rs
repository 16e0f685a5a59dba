//! The little JSON the server writes by hand: escaped strings, and the id lists of
//! publish answers.

/// Escapes a string for a JSON string literal (quotes, backslashes, control characters).
pub fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
}

/// The answer to a publish: `{"id":"<id>"}` for a single one, `{"ids":["<id>",...]}`
/// for a batch (in order).
pub fn publish_answer(ids: &[u64], batch: bool) -> String {
    let mut out = String::with_capacity(10 + ids.len() * 22);
    let quoted = |out: &mut String, id: u64| {
        out.push('"');
        out.push_str(itoa::Buffer::new().format(id));
        out.push('"');
    };
    match (batch, ids) {
        (false, [id]) => {
            out.push_str("{\"id\":");
            quoted(&mut out, *id);
            out.push('}');
        }
        _ => {
            out.push_str("{\"ids\":[");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(&mut out, *id);
            }
            out.push_str("]}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_escapes() {
        assert_eq!(publish_answer(&[7], false), "{\"id\":\"7\"}");
        assert_eq!(publish_answer(&[1, 2], true), "{\"ids\":[\"1\",\"2\"]}");
        assert_eq!(publish_answer(&[3], true), "{\"ids\":[\"3\"]}");
        let mut s = String::new();
        json_escape("a\"b\\c\n\u{7f}", &mut s);
        assert_eq!(s, "a\\\"b\\\\c\\u000a\\u007f");
    }
}
