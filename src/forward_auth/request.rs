//! The request to the auth server: one buffer with every forwarded field.

use std::fmt::Write as _;

use super::{Action, Credentials, Settings};

/// The request to the auth server, in one buffer.
pub fn request(settings: &Settings, action: Action, who: &Credentials, topics: &[&str]) -> Vec<u8> {
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "GET {} HTTP/1.1\r\nHost: {}\r\nX-Ringcast-Action: {}\r\nX-Ringcast-Topics: ",
        settings.path,
        settings.host,
        action.name()
    );
    encode_topics(&mut head, topics);
    head.push_str("\r\n");
    if let Some(peer) = who.peer {
        let _ = write!(head, "X-Forwarded-For: {peer}\r\n");
    }
    let mut out = head.into_bytes();
    // The client's values passed the request parser (no CR, LF or NUL): safe to copy.
    let fields: [(&[u8], Option<&[u8]>); 4] = [
        (b"X-Original-URI", Some(&who.target)),
        (b"Cookie", who.cookie.as_deref()),
        (b"Authorization", who.authorization.as_deref()),
        (b"Origin", who.origin.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `a,b%2Fc`: every byte but unreserved ones (`A-Z a-z 0-9 - . _ ~`) percent-encoded,
/// so a comma can only be a separator.
fn encode_topics(out: &mut String, topics: &[&str]) {
    for (i, topic) in topics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for b in topic.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_what_the_contract_names() {
        let s = Settings::new("http://127.0.0.1:9/check").unwrap();
        let who = Credentials {
            cookie: Some(b"session=abc; x=1".to_vec()),
            authorization: None,
            origin: Some(b"https://app.example".to_vec()),
            target: b"/events?topic=a&topic=b%2Fc".to_vec(),
            peer: Some("10.1.2.3".parse().unwrap()),
        };
        let req = request(&s, Action::Subscribe, &who, &["a", "b/c", "x:y"]);
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "GET /check HTTP/1.1\r\nHost: 127.0.0.1:9\r\nX-Ringcast-Action: subscribe\r\n\
             X-Ringcast-Topics: a,b%2Fc,x%3Ay\r\nX-Forwarded-For: 10.1.2.3\r\n\
             X-Original-URI: /events?topic=a&topic=b%2Fc\r\nCookie: session=abc; x=1\r\n\
             Origin: https://app.example\r\n\r\n"
        );
    }
}
