//! Cross-origin access: which browser origins may subscribe and publish, the headers
//! their responses carry, and the answer to a preflight.

use crate::http::response::Response;

/// Request headers a cross-origin `EventSource` or `fetch` may send.
const ALLOW_HEADERS: &str = "Last-Event-ID, Authorization, Content-Type, Cache-Control, Accept";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

#[derive(Debug)]
pub struct Cors {
    /// Allowed origins, lowercased (`https://app.example.com`).
    origins: Vec<String>,
    /// `*`: any origin (never together with credentials).
    any: bool,
    /// Whether cookies and Authorization headers are allowed cross-origin.
    credentials: bool,
}

impl Cors {
    /// None when no origin is configured. `*` with credentials is refused: browsers reject
    /// it, and echoing any origin with credentials would hand every site the user's cookies.
    pub fn new(origins: &[String], credentials: bool) -> Result<Option<Cors>, String> {
        if origins.is_empty() {
            return Ok(None);
        }
        let any = origins.iter().any(|o| o == "*");
        if any && credentials {
            return Err(
                "--cors-origin '*' cannot be combined with --cors-credentials; list the origins"
                    .into(),
            );
        }
        for o in origins.iter().filter(|o| *o != "*") {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return Err(format!(
                    "--cors-origin {o:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
        let origins = origins.iter().map(|o| o.to_ascii_lowercase()).collect();
        Ok(Some(Cors {
            origins,
            any,
            credentials,
        }))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    pub fn allow(&self, origin: Option<&[u8]>) -> Option<String> {
        let origin = std::str::from_utf8(origin?).ok()?;
        if self.any {
            return Some("*".into());
        }
        let lower = origin.to_ascii_lowercase();
        self.origins.contains(&lower).then(|| origin.to_owned())
    }

    /// Adds the headers of an actual (non-preflight) response for an allowed origin.
    pub fn apply(&self, response: Response, allowed: &str) -> Response {
        let mut r = response.header("Access-Control-Allow-Origin", allowed);
        if allowed != "*" {
            r = r.header("Vary", "Origin");
        }
        if self.credentials {
            r = r.header("Access-Control-Allow-Credentials", "true");
        }
        r
    }

    /// The answer to `OPTIONS` with `Origin` and `Access-Control-Request-Method`: 204 with
    /// the allowances, or 403 for an origin or method that is not allowed.
    pub fn preflight(
        &self,
        origin: Option<&[u8]>,
        method: Option<&[u8]>,
        methods: &str,
    ) -> (u16, Vec<u8>) {
        let method_ok =
            method.is_some_and(|m| methods.split(", ").any(|allowed| allowed.as_bytes() == m));
        match self.allow(origin) {
            Some(allowed) if method_ok => {
                let r = self
                    .apply(Response::new(204), &allowed)
                    .header("Access-Control-Allow-Methods", methods)
                    .header("Access-Control-Allow-Headers", ALLOW_HEADERS)
                    .header("Access-Control-Max-Age", MAX_AGE);
                (204, r.empty())
            }
            _ => (
                403,
                crate::http::response::error(403, "origin or method not allowed"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
        Cors::new(&origins, credentials).unwrap().unwrap()
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let c = cors(&["https://app.example.com"], true);
        assert_eq!(
            c.allow(Some(b"https://app.example.com")),
            Some("https://app.example.com".into())
        );
        assert_eq!(
            c.allow(Some(b"https://APP.example.com")),
            Some("https://APP.example.com".into())
        );
        assert_eq!(c.allow(Some(b"https://evil.example.com")), None);
        assert_eq!(c.allow(None), None);
        assert_eq!(
            cors(&["*"], false).allow(Some(b"https://any.where")),
            Some("*".into())
        );
    }

    #[test]
    fn star_with_credentials_and_non_origins_are_configuration_errors() {
        assert!(Cors::new(&["*".into()], true).is_err());
        assert!(Cors::new(&["app.example.com".into()], false).is_err());
        assert!(Cors::new(&["https://app.example.com/".into()], false).is_err());
        assert!(Cors::new(&[], true).unwrap().is_none());
    }

    #[test]
    fn preflights_name_the_allowances() {
        let c = cors(&["https://a.test"], true);
        let (status, bytes) = c.preflight(Some(b"https://a.test"), Some(b"GET"), "GET, OPTIONS");
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(status, 204);
        for h in [
            "Access-Control-Allow-Origin: https://a.test\r\n",
            "Access-Control-Allow-Credentials: true\r\n",
            "Access-Control-Allow-Methods: GET, OPTIONS\r\n",
            "Last-Event-ID, Authorization",
            "Vary: Origin\r\n",
        ] {
            assert!(text.contains(h), "{h:?} in {text}");
        }
        assert_eq!(
            c.preflight(Some(b"https://b.test"), Some(b"GET"), "GET, OPTIONS")
                .0,
            403
        );
        assert_eq!(
            c.preflight(Some(b"https://a.test"), Some(b"DELETE"), "GET, OPTIONS")
                .0,
            403
        );
    }
}
