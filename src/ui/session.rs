//! Sessions of the admin UI, kept in memory: a random session id in an
//! `HttpOnly; SameSite=Strict; Path=/ui` cookie maps to the credential that
//! signed in (its name, tenant and access; never the key, which is not kept
//! at all) and to a CSRF token that every state-changing form carries. The
//! server keeps only the SHA-256 of each session id. A restart signs
//! everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::auth::Credential;

/// The session cookie.
pub const COOKIE: &str = "hf_ui_session";
/// The cookie of the sign-in form's CSRF token (before there is a session).
pub const SIGN_IN_COOKIE: &str = "hf_ui_sign_in";
/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept; signing in beyond drops the oldest.
const MAX_SESSIONS: usize = 10_000;

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flash {
    Done(String),
    Failed(String),
}

#[derive(Debug)]
struct Entry {
    cred: Arc<Credential>,
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// A signed-in session as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id (from the cookie), to address the session again.
    pub id: String,
    pub cred: Arc<Credential>,
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// Every signed-in session of one server.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

/// 32 random bytes as hex; `None` if the system has no randomness to give.
pub fn random_token() -> Option<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).ok()?;
    Some(raw.iter().map(|b| format!("{b:02x}")).collect())
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Two tokens compared in constant time (the lengths are not secret).
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `cred`: its id (for the cookie), or `None` without randomness.
    pub fn create(&self, cred: Arc<Credential>, now: Instant) -> Option<String> {
        let id = random_token()?;
        let csrf = random_token()?;
        let mut map = self.lock();
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(digest(&id), Entry { cred, csrf, expires: now + LIFETIME, flash: None });
        Some(id)
    }

    /// The live session of `id`, taking its flash message.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let key = digest(id);
        let mut map = self.lock();
        let e = map.get_mut(&key)?;
        if e.expires <= now {
            map.remove(&key);
            return None;
        }
        Some(Session { id: id.to_string(), cred: Arc::clone(&e.cred), csrf: e.csrf.clone(), flash: e.flash.take() })
    }

    /// Shows `flash` on the next page of session `id`.
    pub fn flash(&self, id: &str, flash: Flash) {
        if let Some(e) = self.lock().get_mut(&digest(id)) {
            e.flash = Some(flash);
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    /// Sessions kept (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to `/ui`, and
/// `Secure` when the server is reached over https (its issuer URL).
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={}{secure}", max_age.as_secs())
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::{Access, Keys};

    #[test]
    fn sessions_expire_and_keep_no_key() {
        let keys = Keys::admin("k").with("viewer", "v", Some("acme"), Access::Read);
        let cred = keys.authenticate("v").unwrap();
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.create(cred, t0).unwrap();
        assert_eq!(id.len(), 64);
        let got = s.get(&id, t0).unwrap();
        assert_eq!((got.cred.name.as_str(), got.csrf.len()), ("viewer", 64));
        assert_ne!(got.csrf, id);
        assert!(s.get("0".repeat(64).as_str(), t0).is_none());
        s.flash(&id, Flash::Done("ok".into()));
        assert_eq!(s.get(&id, t0).unwrap().flash, Some(Flash::Done("ok".into())));
        assert_eq!(s.get(&id, t0).unwrap().flash, None, "a flash is shown once");
        assert!(s.get(&id, t0 + LIFETIME).is_none(), "expired");
        assert!(s.is_empty(), "an expired session is dropped");
        let id = s.create(keys.authenticate("k").unwrap(), t0).unwrap();
        s.remove(&id);
        assert!(s.get(&id, t0).is_none());
    }

    #[test]
    fn tokens_and_cookies() {
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("abc", "ab"));
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; hf_ui_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        let c = set_cookie(COOKIE, "xyz", LIFETIME, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/ui"), "{c}");
        assert!(!c.contains("Secure") && set_cookie(COOKIE, "xyz", LIFETIME, true).ends_with("; Secure"));
    }
}
