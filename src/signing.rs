//! Who may read what: private objects behind signed URLs (CORS is `crate::cors`).
//!
//! Keys under the configured private prefix are served only with a valid signature:
//! `?expires=UNIX&sig=HEX`, where `sig` is HMAC-SHA256 with the configured secret over
//! `GET\n{path}\n{expires}` (`path` is the URL path as sent, percent-encoding included). HEAD
//! uses the GET signature, since it asks for the same representation. Signatures are compared in
//! constant time (`Mac::verify_slice`). Expired, wrong or missing signatures get 403; without a
//! secret the private prefix is never served at all (404, as if it did not exist). Signed
//! responses carry `Cache-Control: private` whatever the policy says, so no shared cache keeps
//! them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::request::ObjectRequest;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not private.
    Public,
    /// Private and validly signed.
    SignedPrivate,
    /// Private and signing is not configured: never served.
    Hidden,
    /// Private with a missing, expired or wrong signature.
    Forbidden,
}

/// Access rules built from the settings.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    private_prefix: Option<String>,
    secret: Option<Vec<u8>>,
}

impl AccessRules {
    /// From settings values.
    pub fn new(private_prefix: Option<String>, secret: Option<Vec<u8>>) -> Self {
        AccessRules {
            private_prefix,
            secret,
        }
    }

    /// Whether `key` is under the private prefix (or is its folder).
    pub fn is_private(&self, key: &str) -> bool {
        self.private_prefix.as_deref().is_some_and(|prefix| {
            key.starts_with(prefix) || prefix.strip_suffix('/').is_some_and(|folder| folder == key)
        })
    }

    /// Checks a request against the private prefix.
    pub fn check(&self, req: &ObjectRequest) -> Access {
        if !self.is_private(req.target.key()) {
            return Access::Public;
        }
        let Some(secret) = &self.secret else {
            return Access::Hidden;
        };
        let (mut expires, mut sig) = (None, None);
        for pair in req.query.as_deref().unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse::<u64>().ok(),
                Some(("sig", v)) => sig = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (Some(expires), Some(sig)) = (expires, sig) else {
            return Access::Forbidden;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if expires < now {
            return Access::Forbidden;
        }
        let raw_path = percent_path(req.target.path());
        match mac(secret, &raw_path, expires).map(|m| m.verify_slice(&sig)) {
            Some(Ok(())) => Access::SignedPrivate,
            _ => Access::Forbidden,
        }
    }
}

/// Re-encodes a decoded path the way [`sign`] does, so signing and checking agree.
fn percent_path(decoded: &str) -> String {
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(decoded, PATH).to_string()
}

fn mac(secret: &[u8], path: &str, expires: u64) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret).ok()?;
    m.update(b"GET\n");
    m.update(path.as_bytes());
    m.update(b"\n");
    m.update(expires.to_string().as_bytes());
    Some(m)
}

/// A signed path-and-query for `path` (decoded form) valid for `ttl`.
pub fn sign(secret: &[u8], path: &str, ttl: Duration) -> Result<String, String> {
    if secret.len() < 32 {
        return Err(format!(
            "the signing secret must be at least 32 bytes (got {})",
            secret.len()
        ));
    }
    if !path.starts_with('/') {
        return Err("the path must start with /".into());
    }
    if ttl.as_secs() == 0 {
        return Err(
            "the TTL must be at least 1s: a URL that expires now is refused at once".into(),
        );
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| "the path is not UTF-8".to_string())?;
    let encoded = percent_path(&decoded);
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + ttl.as_secs();
    let m = mac(secret, &encoded, expires).ok_or("bad secret")?;
    let sig = hex::encode(m.finalize().into_bytes());
    Ok(format!("{encoded}?expires={expires}&sig={sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ObjectMethod, map_path};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn req(url: &str) -> ObjectRequest {
        let uri: http::Uri = url.parse().unwrap();
        let target = map_path(&uri, false).unwrap();
        ObjectRequest::new(
            ObjectMethod::Get,
            target,
            &uri,
            &http::HeaderMap::new(),
            http::Version::HTTP_11,
        )
    }

    fn rules() -> AccessRules {
        AccessRules::new(Some("private/".into()), Some(SECRET.to_vec()))
    }

    #[test]
    fn a_signed_url_opens_a_private_object() {
        let signed = sign(SECRET, "/private/report file.pdf", Duration::from_secs(60)).unwrap();
        assert_eq!(rules().check(&req(&signed)), Access::SignedPrivate);
    }

    #[test]
    fn missing_wrong_or_expired_signatures_are_forbidden() {
        assert_eq!(rules().check(&req("/private/a.pdf")), Access::Forbidden);
        let signed = sign(SECRET, "/private/a.pdf", Duration::from_secs(60)).unwrap();
        let tampered = signed.replace("/private/a.pdf", "/private/b.pdf");
        assert_eq!(rules().check(&req(&tampered)), Access::Forbidden);
        let other = sign(
            b"another-secret-of-32-bytes-length!",
            "/private/a.pdf",
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(rules().check(&req(&other)), Access::Forbidden);
        let expired = "/private/a.pdf?expires=1&sig=00";
        assert_eq!(rules().check(&req(expired)), Access::Forbidden);
    }

    #[test]
    fn without_a_secret_the_private_prefix_is_hidden() {
        let rules = AccessRules::new(Some("private/".into()), None);
        assert_eq!(rules.check(&req("/private/a.pdf")), Access::Hidden);
        assert_eq!(rules.check(&req("/public/a.pdf")), Access::Public);
    }

    #[test]
    fn short_secrets_and_a_zero_ttl_are_refused() {
        assert!(sign(b"short", "/a", Duration::from_secs(1)).is_err());
        let secret = [7u8; 32];
        assert!(sign(&secret, "/a", Duration::ZERO).is_err());
        assert!(sign(&secret, "/a", Duration::from_secs(1)).is_ok());
    }
}
