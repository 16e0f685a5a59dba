//! Who may subscribe to which topics, and who may publish where.
//!
//! With a JWT key configured, a subscriber presents a token (an `Authorization: Bearer`
//! header, a cookie, or — only when enabled — an `access_token` query parameter) whose
//! `topics` claim lists the topics it may follow, as exact names or `prefix*` patterns;
//! its `exp` claim ends the stream when the token expires. A `publish` claim lets the
//! bearer publish to the topics it lists, from anywhere.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Why a request was refused: `Missing` and `Invalid` are 401, `Forbidden` is 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
    Forbidden,
}

impl AuthError {
    pub const fn status(self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Invalid => 401,
            AuthError::Forbidden => 403,
        }
    }

    pub const fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "a token is required",
            AuthError::Invalid => "invalid or expired token",
            AuthError::Forbidden => "the token does not allow this topic",
        }
    }
}

/// A topic pattern from a token: an exact name, or everything under a prefix (`chat/*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    pub fn parse(raw: &str) -> Pattern {
        match raw.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(raw.to_owned()),
        }
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == topic,
            Pattern::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }
}

/// What a verified token allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Unix seconds at which the token expires, if it does.
    pub expires: Option<u64>,
    pub topics: Vec<Pattern>,
    pub publish: Vec<Pattern>,
    /// The `sub` claim: who the subscriber is.
    pub subject: Option<String>,
}

impl Grant {
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.topics.iter().any(|p| p.matches(topic))
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }

    /// Seconds until the token expires (0 if it already has), or None.
    pub fn remaining_secs(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.expires.map(|exp| exp.saturating_sub(now))
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    sub: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
}

/// The verifier, built once from the configuration.
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
    /// Cookie carrying the token (so a browser `EventSource` with `withCredentials` needs
    /// no token in its URL).
    cookie: String,
    /// Whether `?access_token=` is accepted: off by default, because URLs end up in logs.
    query_token: bool,
}

impl Auth {
    /// From an HS256 secret.
    pub fn hs256(secret: &[u8], cookie: String, query_token: bool) -> Auth {
        Auth::new(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            cookie,
            query_token,
        )
    }

    /// From a PEM public key: RSA keys verify RS256, EC (P-256) keys ES256.
    pub fn public_key(pem: &[u8], cookie: String, query_token: bool) -> Result<Auth, String> {
        let (key, alg) = match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => (key, Algorithm::RS256),
            Err(_) => match DecodingKey::from_ec_pem(pem) {
                Ok(key) => (key, Algorithm::ES256),
                Err(e) => return Err(format!("not a usable RSA or EC (P-256) public key: {e}")),
            },
        };
        Ok(Auth::new(key, alg, cookie, query_token))
    }

    fn new(key: DecodingKey, alg: Algorithm, cookie: String, query_token: bool) -> Auth {
        let mut validation = Validation::new(alg);
        // `exp` is honoured when present; tokens without it do not expire.
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        Auth {
            key,
            validation,
            cookie,
            query_token,
        }
    }

    /// The token a request carries: the bearer header first, then the cookie, then (when
    /// enabled) the query parameter.
    pub fn token<'a>(
        &self,
        authorization: Option<&'a [u8]>,
        cookie: Option<&'a [u8]>,
        query_token: Option<&'a [u8]>,
    ) -> Option<&'a [u8]> {
        if let Some(bearer) = authorization.and_then(|h| h.strip_prefix(b"Bearer ")) {
            return Some(bearer.trim_ascii());
        }
        if let Some(value) = cookie.and_then(|c| cookie_value(c, self.cookie.as_bytes())) {
            return Some(value);
        }
        query_token.filter(|_| self.query_token)
    }

    /// Verifies a token's signature and expiry; returns what it grants.
    pub fn verify(&self, token: &[u8]) -> Result<Grant, AuthError> {
        let token = std::str::from_utf8(token).map_err(|_| AuthError::Invalid)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|_| AuthError::Invalid)?;
        let claims = data.claims;
        Ok(Grant {
            expires: claims.exp,
            topics: claims.topics.iter().map(|t| Pattern::parse(t)).collect(),
            publish: claims.publish.iter().map(|t| Pattern::parse(t)).collect(),
            subject: claims.sub,
        })
    }
}

impl std::fmt::Debug for Auth {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("algorithm", &self.validation.algorithms)
            .field("cookie", &self.cookie)
            .field("query_token", &self.query_token)
            .finish()
    }
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq] == *name).then(|| pair[eq + 1..].trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn auth() -> Auth {
        Auth::hs256(b"s3cret", "rc_token".into(), false)
    }

    #[test]
    fn patterns_match_exact_names_and_prefixes() {
        assert!(Pattern::parse("chat/*").matches("chat/room1"));
        assert!(!Pattern::parse("chat/*").matches("chatroom"));
        assert!(Pattern::parse("*").matches("anything"));
        assert!(Pattern::parse("news").matches("news"));
        assert!(!Pattern::parse("news").matches("news2"));
    }

    #[test]
    fn a_valid_token_grants_its_topics() {
        let t = token(
            serde_json::json!({"topics": ["a", "b/*"], "publish": ["b/x"]}),
            b"s3cret",
        );
        let g = auth().verify(t.as_bytes()).unwrap();
        assert!(g.may_subscribe("a") && g.may_subscribe("b/c") && !g.may_subscribe("c"));
        assert!(g.may_publish("b/x") && !g.may_publish("a"));
        assert_eq!((g.expires, g.subject), (None, None));
        let t = token(
            serde_json::json!({"topics": ["a"], "sub": "ann"}),
            b"s3cret",
        );
        assert_eq!(
            auth().verify(t.as_bytes()).unwrap().subject.as_deref(),
            Some("ann")
        );
    }

    #[test]
    fn bad_signatures_expired_and_garbage_are_invalid() {
        let a = auth();
        let wrong = token(serde_json::json!({"topics": ["a"]}), b"other");
        assert_eq!(a.verify(wrong.as_bytes()), Err(AuthError::Invalid));
        let expired = token(
            serde_json::json!({"topics": ["a"], "exp": 1_000_000}),
            b"s3cret",
        );
        assert_eq!(a.verify(expired.as_bytes()), Err(AuthError::Invalid));
        assert_eq!(a.verify(b"not.a.token"), Err(AuthError::Invalid));
        assert_eq!(a.verify(b"\xff"), Err(AuthError::Invalid));
        let none = encode(
            &Header::new(Algorithm::HS384),
            &serde_json::json!({"topics": ["a"]}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(
            a.verify(none.as_bytes()),
            Err(AuthError::Invalid),
            "only the configured algorithm"
        );
    }

    #[test]
    fn the_token_comes_from_header_cookie_or_enabled_query() {
        let a = auth();
        assert_eq!(
            a.token(Some(b"Bearer abc"), Some(b"rc_token=def"), Some(b"ghi")),
            Some(&b"abc"[..])
        );
        assert_eq!(
            a.token(None, Some(b"x=1; rc_token=def; y=2"), Some(b"ghi")),
            Some(&b"def"[..])
        );
        assert_eq!(
            a.token(None, Some(b"x=1"), Some(b"ghi")),
            None,
            "query tokens are off by default"
        );
        let q = Auth::hs256(b"s", "rc_token".into(), true);
        assert_eq!(q.token(None, None, Some(b"ghi")), Some(&b"ghi"[..]));
        assert_eq!(
            cookie_value(b"rc_token2=x; rc_token=y", b"rc_token"),
            Some(&b"y"[..])
        );
    }
}
