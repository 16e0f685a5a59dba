//! `GET /`: the live page, built into the binary, and the `sys:stats` stream that feeds
//! its server panel ([`stats`]).
//!
//! The page is three small files next to this one (HTML, script, style) and an icon,
//! included at compile time: no build step, no CDN. Each is served with its content
//! type, `Cache-Control: no-cache` (the URLs carry no version, so a browser revalidates,
//! and a revalidation costs a `304`), a strong `ETag` hashed at compile time, and a
//! Content-Security-Policy that allows only this server's own script, style and streams.
//!
//! The HTML holds one value filled at serve time: the server's `retry` hint, which
//! `EventSource` obeys but does not expose, so that the page can count the reconnection
//! delay down. Every URL in the page is relative, so it works under `--base-path`.

pub mod stats;

use std::borrow::Cow;

use crate::config::Config;
use crate::http::parse::Method;
use crate::http::response::Response;

/// Where the HTML takes the server's `retry` hint, in milliseconds.
const RETRY_SLOT: &str = "{{retry_ms}}";

/// Only this origin's script, style, icon and streams; no inline script or style, no
/// frames, no plugins, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    /// The path under the base path.
    path: &'static [u8],
    content_type: &'static str,
    body: &'static str,
    /// FNV-1a of the body; the HTML's tag also names the retry value filled into it.
    hash: u64,
}

macro_rules! asset {
    ($path:literal, $file:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!($file),
            hash: fnv1a(include_str!($file).as_bytes()),
        }
    };
}

const ASSETS: [Asset; 4] = [
    asset!(b"/", "index.html", "text/html; charset=utf-8"),
    asset!(b"/app.js", "app.js", "text/javascript; charset=utf-8"),
    asset!(b"/style.css", "style.css", "text/css; charset=utf-8"),
    asset!(b"/favicon.svg", "favicon.svg", "image/svg+xml"),
];

/// 64-bit FNV-1a: enough to tell builds of a page apart, and computable at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Answers `GET` or `HEAD` for one of the page's paths (as listed in `conn::route`):
/// the status and the encoded response, `200` with the asset or `304` when
/// `If-None-Match` names its tag; `None` when no asset has that path.
pub fn serve(
    path: &[u8],
    method: Method,
    if_none_match: Option<&[u8]>,
    cfg: &Config,
    keep_alive: bool,
) -> Option<(u16, Vec<u8>)> {
    let asset = ASSETS.iter().find(|a| a.path == path)?;
    let (body, etag) = content(asset, cfg);
    let fresh = if_none_match.is_some_and(|v| matches_etag(v, &etag));
    let status = if fresh { 304 } else { 200 };
    let mut r = Response::new(status)
        .header("ETag", &etag)
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", CSP)
        .header("Referrer-Policy", "no-referrer");
    if !keep_alive {
        r = r.close();
    }
    let bytes = if fresh {
        r.no_body()
    } else {
        let mut bytes = r.body(asset.content_type, body.as_bytes());
        if method == Method::Head {
            bytes.truncate(bytes.len() - body.len());
        }
        bytes
    };
    Some((status, bytes))
}

/// An asset's bytes and tag; the HTML gets the retry hint, and a tag that names it.
fn content(asset: &Asset, cfg: &Config) -> (Cow<'static, str>, String) {
    if asset.path != b"/" {
        return (
            Cow::Borrowed(asset.body),
            format!("\"{:016x}\"", asset.hash),
        );
    }
    let retry = cfg.retry.as_millis();
    let body = asset.body.replacen(RETRY_SLOT, &retry.to_string(), 1);
    (Cow::Owned(body), format!("\"{:016x}-{retry}\"", asset.hash))
}

/// Whether an `If-None-Match` value names `etag`: `*`, or any listed tag by the weak
/// comparison (RFC 9110 §13.1.2), which ignores a `W/` prefix.
fn matches_etag(value: &[u8], etag: &str) -> bool {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let tag = "\"00ff-3000\"";
        for yes in [
            &b"\"00ff-3000\""[..],
            b"W/\"00ff-3000\"",
            b"\"old\", \"00ff-3000\"",
            b"\"old\",W/\"00ff-3000\"",
            b"*",
        ] {
            assert!(matches_etag(yes, tag), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b""[..],
            b"\"00ff\"",
            b"00ff-3000",
            b"\"00ff-3000",
            b"w/\"00ff-3000\"",
        ] {
            assert!(!matches_etag(no, tag), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn the_page_gets_the_retry_hint_and_a_tag_naming_it() {
        let cfg = Config::new().retry(std::time::Duration::from_millis(1234));
        let (status, bytes) = serve(b"/", Method::Get, None, &cfg, true).expect("an asset");
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(status, 200);
        assert!(text.contains("content=\"1234\""), "{text}");
        assert!(!text.contains(RETRY_SLOT));
        assert!(text.contains(&format!("ETag: \"{:016x}-1234\"", ASSETS[0].hash)));
    }

    #[test]
    fn every_asset_is_referenced_by_the_page() {
        let html = ASSETS[0].body;
        assert!(html.contains(RETRY_SLOT));
        for asset in &ASSETS[1..] {
            let name = std::str::from_utf8(&asset.path[1..]).unwrap();
            assert!(html.contains(&format!("\"{name}\"")), "{name}");
        }
    }
}
