//! API credentials: bearer keys, compared by SHA-256 digest in constant
//! time. Keys come from `HOLDFAST_API_KEY` (the admin key), a keys file
//! (per-tenant keys, read-only or read-write), or — when neither is
//! configured — a key generated at first start whose hash alone is kept in
//! `<data>/admin-key.sha256`. Keys are never logged; a credential is known
//! to the rest of the server by its name.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::{header, request::Parts};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::model::validate_id;

/// The header naming the tenant of `/uflow` calls (default: `default`).
pub const TENANT_HEADER: &str = "x-holdfast-tenant";
/// The tenant of `/uflow` calls without [`TENANT_HEADER`].
pub const DEFAULT_TENANT: &str = crate::policy::DEFAULT_TENANT;
/// Where the hash of a generated admin key is kept, inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin-key.sha256";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// One configured credential.
#[derive(Clone)]
pub struct Credential {
    /// What the change log records as the actor.
    pub name: String,
    /// `None`: every tenant.
    pub tenant: Option<String>,
    pub access: Access,
    digest: [u8; 32],
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys file `{file}`: {message}")]
    File { file: String, message: String },
    #[error("`{file}`: {message}")]
    Io { file: String, message: String },
}

fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_sha256: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    access: Access,
}

/// The credentials the server accepts.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    creds: Vec<Arc<Credential>>,
}

impl Keys {
    /// One admin key: every tenant, read-write.
    pub fn admin(key: &str) -> Keys {
        Keys::admin_digest("admin", sha256(key))
    }

    fn admin_digest(name: &str, digest: [u8; 32]) -> Keys {
        Keys { creds: vec![Arc::new(Credential { name: name.into(), tenant: None, access: Access::Write, digest })] }
    }

    /// Adds a credential (tests, embedding).
    pub fn with(mut self, name: &str, key: &str, tenant: Option<&str>, access: Access) -> Keys {
        self.creds.push(Arc::new(Credential {
            name: name.into(),
            tenant: tenant.map(str::to_string),
            access,
            digest: sha256(key),
        }));
        self
    }

    /// Both sets of credentials.
    pub fn merge(mut self, other: Keys) -> Keys {
        self.creds.extend(other.creds);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
    }

    /// Parses a keys file: a YAML or JSON list of
    /// `{name, key_sha256 | key, tenant?, access: read|write}`.
    pub fn parse(text: &str, file: &str) -> Result<Keys, KeyError> {
        let err = |message: String| KeyError::File { file: file.to_string(), message };
        let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| err(e.to_string()))?;
        let value = docs.first().map(yaml_to_json).unwrap_or(serde_json::Value::Null);
        let entries: Vec<KeyEntry> = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        let mut creds = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            let digest = match (&e.key, &e.key_sha256) {
                (Some(k), None) if !k.is_empty() => sha256(k),
                (None, Some(h)) => unhex(h)
                    .ok_or_else(|| err(format!("entry {i} (`{}`): `key_sha256` is not 64 hex digits", e.name)))?,
                _ => return Err(err(format!("entry {i} (`{}`): give exactly one of `key` and `key_sha256`", e.name))),
            };
            if let Some(t) = &e.tenant {
                validate_id(t).map_err(|m| err(format!("entry {i} (`{}`): tenant `{t}` {m}", e.name)))?;
            }
            creds.push(Arc::new(Credential { name: e.name, tenant: e.tenant, access: e.access, digest }));
        }
        if creds.is_empty() {
            return Err(err("lists no keys".into()));
        }
        Ok(Keys { creds })
    }

    pub fn load(path: &Path) -> Result<Keys, KeyError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| KeyError::Io { file: file.clone(), message: e.to_string() })?;
        Keys::parse(&text, &file)
    }

    /// The admin key of a data directory: the stored hash of a key generated
    /// at first start. Returns the new key (to print once) when it had to
    /// generate one.
    pub fn load_or_generate(data_dir: &Path) -> Result<(Keys, Option<String>), KeyError> {
        let path = data_dir.join(ADMIN_KEY_FILE);
        let io = |e: std::io::Error| KeyError::Io { file: path.display().to_string(), message: e.to_string() };
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let digest = unhex(&text).ok_or_else(|| KeyError::Io {
                file: path.display().to_string(),
                message: "expected the 64 hex digits of a SHA-256".into(),
            })?;
            return Ok((Keys::admin_digest("admin", digest), None));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|e| KeyError::Io { file: path.display().to_string(), message: e.to_string() })?;
        let key = format!("hf_{}", hex(&raw));
        std::fs::create_dir_all(data_dir).map_err(io)?;
        write_private(&path, &format!("{}\n", hex(&sha256(&key)))).map_err(io)?;
        Ok((Keys::admin(&key), Some(key)))
    }

    /// The credential a presented key belongs to. Every configured digest is
    /// compared, in constant time.
    pub fn authenticate(&self, key: &str) -> Option<Arc<Credential>> {
        let digest = sha256(key);
        let mut found = None;
        for c in &self.creds {
            if bool::from(c.digest.ct_eq(&digest)) {
                found = Some(Arc::clone(c));
            }
        }
        found
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> serde_json::Value {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => {
            s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
        }
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        other => yaml_to_json(other).to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

// ---------------------------------------------------------------- extractors

/// The authenticated caller (any tenant, any access).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Credential>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauth = |m: &str| ApiError::new(ErrorCode::Unauthenticated, m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauth("missing `Authorization: Bearer <key>` header"))?;
        let value = value.to_str().map_err(|_| unauth("the `Authorization` header is not text"))?;
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauth("expected `Authorization: Bearer <key>`"))?;
        state.keys().authenticate(key).map(Caller).ok_or_else(|| unauth("the API key is not valid"))
    }
}

/// The tenant a request addresses: the `{tenant}` path parameter, else the
/// `X-Holdfast-Tenant` header, else `default`.
async fn tenant_of(parts: &mut Parts, state: &AppState) -> Result<String, ApiError> {
    let from_path = match RawPathParams::from_request_parts(parts, state).await {
        Ok(params) => params.iter().find(|(k, _)| *k == "tenant").map(|(_, v)| v.to_string()),
        Err(_) => None,
    };
    let tenant = match (from_path, parts.headers.get(TENANT_HEADER)) {
        (Some(t), _) => t,
        (None, Some(v)) => v
            .to_str()
            .map_err(|_| ApiError::parameter(format!("the `{TENANT_HEADER}` header is not text")))?
            .to_string(),
        (None, None) => DEFAULT_TENANT.to_string(),
    };
    validate_id(&tenant).map_err(|m| ApiError::parameter(format!("tenant `{tenant}` {m}")))?;
    Ok(tenant)
}

async fn authorize(parts: &mut Parts, state: &AppState, write: bool) -> Result<(String, Arc<Credential>), ApiError> {
    let Caller(cred) = Caller::from_request_parts(parts, state).await?;
    let tenant = tenant_of(parts, state).await?;
    if cred.tenant.as_deref().is_some_and(|t| t != tenant) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("credential `{}` may not access tenant `{tenant}`", cred.name),
        ));
    }
    if write && cred.access != Access::Write {
        return Err(ApiError::new(ErrorCode::Forbidden, format!("credential `{}` is read-only", cred.name)));
    }
    Ok((tenant, cred))
}

/// A caller allowed to read the addressed tenant.
#[derive(Debug, Clone)]
pub struct TenantRead {
    pub tenant: String,
    pub caller: Arc<Credential>,
}

/// A caller allowed to write the addressed tenant.
#[derive(Debug, Clone)]
pub struct TenantWrite {
    pub tenant: String,
    pub caller: Arc<Credential>,
}

impl FromRequestParts<AppState> for TenantRead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant, caller) = authorize(parts, state, false).await?;
        Ok(TenantRead { tenant, caller })
    }
}

impl FromRequestParts<AppState> for TenantWrite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant, caller) = authorize(parts, state, true).await?;
        Ok(TenantWrite { tenant, caller })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_file_yaml_and_json() {
        let digest = hex(&sha256("s3cret"));
        let yaml = format!(
            "- name: sync\n  key_sha256: {digest}\n  tenant: acme\n  access: write\n- name: viewer\n  key: v1ew\n  access: read\n"
        );
        let k = Keys::parse(&yaml, "keys.yaml").unwrap();
        let c = k.authenticate("s3cret").unwrap();
        assert_eq!((c.name.as_str(), c.tenant.as_deref(), c.access), ("sync", Some("acme"), Access::Write));
        assert_eq!(k.authenticate("v1ew").unwrap().access, Access::Read);
        assert!(k.authenticate("nope").is_none());
        let json = r#"[{"name":"a","key":"x","access":"read"}]"#;
        assert_eq!(Keys::parse(json, "k.json").unwrap().authenticate("x").unwrap().name, "a");
        let e = Keys::parse(r#"[{"name":"a","key":"x","acces":"read"}]"#, "k.json").unwrap_err().to_string();
        assert!(e.contains("unknown field `acces`"), "{e}");
        let e = Keys::parse(r#"[{"name":"a","access":"read"}]"#, "k.json").unwrap_err().to_string();
        assert!(e.contains("exactly one of `key` and `key_sha256`"), "{e}");
        let e = Keys::parse(r#"[{"name":"a","key_sha256":"abc","access":"read"}]"#, "k.json").unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
    }

    #[test]
    fn generated_key_is_stored_hashed_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, key) = Keys::load_or_generate(dir.path()).unwrap();
        let key = key.unwrap();
        assert!(key.starts_with("hf_") && key.len() == 67, "{key}");
        assert!(k1.authenticate(&key).is_some());
        let stored = std::fs::read_to_string(dir.path().join(ADMIN_KEY_FILE)).unwrap();
        assert!(!stored.contains(&key[3..]), "only the hash is stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (k2, again) = Keys::load_or_generate(dir.path()).unwrap();
        assert!(again.is_none());
        assert!(k2.authenticate(&key).is_some());
        assert!(k2.authenticate("hf_wrong").is_none());
    }
}
