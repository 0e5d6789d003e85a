//! Policy as code over HTTP.
//!
//! - `PUT /v1/tenants/{tenant}/policy`: the body **is** the policy file
//!   (`Content-Type: application/yaml`, `text/yaml` or `application/json`).
//!   It replaces the tenant's roles, applications, groups and bindings with
//!   the file's in one atomic batch ([`crate::policy::apply`] says what is
//!   kept: unowned memberships, users, suspensions, tokens) and answers the
//!   access diff. Query: `dry_run=true` (compute, apply nothing),
//!   `fail_on=added,weakened,...` (apply nothing when the diff has one of
//!   these; `applied: false` and the kinds in `gate`), `format=text|markdown`
//!   (adds `rendered`), `name=` (the file name findings and the diff show).
//! - `POST /v1/policy/validate|test|diff`: stateless, files in a JSON body;
//!   they answer the JSON `holdfast validate|test|diff --format json` prints
//!   (the diff with `gate` and, with `format`, `rendered`). Any valid key.
//!
//! A policy file with error findings answers 422 `invalid_policy` with every
//! finding (`file`, `line`, `col`, `severity`, `code`, `message`, `hint`) in
//! the error body's `findings`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{Caller, TenantWrite};
use super::error::{blocking, ApiError, ErrorCode, Json, Query};
use super::wire::Revision;
use super::AppState;
use crate::model::Timestamp;
use crate::policy::apply::{self, PlanSummary};
use crate::policy::assertions::{self, SuiteError};
use crate::policy::diff::{self, Diff, DiffError, DiffOptions, GATE_KINDS};
use crate::policy::validate::{self, read_limited, Located, MAX_POLICY_BYTES};
use crate::policy::{self, Finding, Policy, PolicyError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/policy", put(apply_policy))
        .route("/v1/policy/validate", post(validate_files))
        .route("/v1/policy/test", post(test_files))
        .route("/v1/policy/diff", post(diff_files))
}

/// Times an apply is retried when the tenant changed while it was computed.
const APPLY_ATTEMPTS: usize = 3;

// ----------------------------------------------------------------- errors

/// An [`ApiError`], or a policy file with error findings (422
/// `invalid_policy`, the findings in the error body).
#[derive(Debug)]
pub enum Reject {
    Api(ApiError),
    Policy { message: String, findings: Vec<Located> },
}

impl From<ApiError> for Reject {
    fn from(e: ApiError) -> Self {
        Reject::Api(e)
    }
}

impl From<PolicyError> for Reject {
    fn from(e: PolicyError) -> Self {
        let report = validate::FileReport { file: e.file.clone(), readable: true, findings: e.findings };
        invalid(&report)
    }
}

impl From<DiffError> for Reject {
    fn from(e: DiffError) -> Self {
        match e {
            DiffError::Policy(p) => p.into(),
            DiffError::Engine(e) => Reject::Api(ApiError::new(ErrorCode::LimitExceeded, e.to_string())),
            DiffError::Load { .. } | DiffError::Worker(_) => Reject::Api(ApiError::internal(e)),
        }
    }
}

impl From<SuiteError> for Reject {
    fn from(e: SuiteError) -> Self {
        match e {
            SuiteError::Policy(p) => p.into(),
            SuiteError::Load { .. } => Reject::Api(ApiError::internal(e)),
        }
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::Api(e) => e.into_response(),
            Reject::Policy { message, findings } => {
                let code = ErrorCode::InvalidPolicy;
                let body = json!({"error": {"code": code.as_str(), "message": message, "findings": findings}});
                (code.status(), axum::Json(body)).into_response()
            }
        }
    }
}

fn invalid(report: &validate::FileReport) -> Reject {
    let n = report.errors();
    Reject::Policy {
        message: format!("policy file `{}` has {n} error(s); nothing was done", report.file),
        findings: report.located(),
    }
}

/// Validates `text` whole (every pass, as `holdfast validate`) and compiles
/// it; any error finding rejects it. Warnings ride along.
fn compile_checked(text: &str, name: &str) -> Result<(Policy, Vec<Located>), Reject> {
    let report = validate::validate_text(text, name);
    if report.errors() > 0 {
        return Err(invalid(&report));
    }
    let policy = policy::compile(text, name)?;
    Ok((policy, report.located()))
}

/// The text of an uploaded file: UTF-8, at most [`MAX_POLICY_BYTES`].
fn file_text(bytes: &[u8], name: &str) -> Result<String, Reject> {
    read_limited(bytes, name, MAX_POLICY_BYTES).map_err(|e| {
        let report = validate::FileReport { file: name.to_string(), readable: false, findings: vec![e.finding()] };
        invalid(&report)
    })
}

fn gate_kinds(fail_on: &[String]) -> Result<Vec<&'static str>, ApiError> {
    fail_on
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|k| {
            GATE_KINDS
                .iter()
                .copied()
                .find(|g| *g == k)
                .ok_or_else(|| ApiError::parameter(format!("`fail_on`: `{k}` is not one of {}", GATE_KINDS.join(", "))))
        })
        .collect()
}

/// `text` or `markdown` rendering of a diff; `json` (or none) renders nothing.
fn rendered(d: &Diff, format: Option<&str>) -> Result<Option<String>, ApiError> {
    match format.unwrap_or("json") {
        "json" => Ok(None),
        "text" => Ok(Some(diff::render_text(d))),
        "markdown" => Ok(Some(diff::render_markdown(d))),
        other => Err(ApiError::parameter(format!("`format`: `{other}` is not one of json, text, markdown"))),
    }
}

// ------------------------------------------------------------------ apply

/// The policy file of a `PUT .../policy`: the raw body, YAML or JSON.
pub struct PolicyBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for PolicyBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(mime.as_str(), "application/yaml" | "application/x-yaml" | "text/yaml" | "application/json") {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected the policy file as the body, with `Content-Type: application/yaml`, `text/yaml` or `application/json`",
            ));
        }
        Bytes::from_request(req, state).await.map(PolicyBody).map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::BodyTooLarge, "request body is larger than the limit of this server")
            } else {
                ApiError::new(ErrorCode::BadJson, format!("cannot read the request body: {}", e.body_text()))
            }
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    #[serde(default)]
    pub dry_run: bool,
    /// Comma-separated [`GATE_KINDS`].
    #[serde(default)]
    pub fail_on: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    /// The file name shown in findings and in the diff (default `policy.yaml`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub fan_out: Option<usize>,
    /// Apply even if it removes every role or application or more than half
    /// of the bindings (the diff's `mass_removal` risk).
    #[serde(default)]
    pub allow_mass_removal: bool,
}

#[derive(Debug, Serialize)]
pub struct ApplyResponse {
    pub tenant: String,
    pub file: String,
    pub dry_run: bool,
    /// The tenant now equals the file (false: dry run, or a `fail_on` gate hit).
    pub applied: bool,
    /// The revision at which the tenant equals the file; `null` when nothing was applied.
    pub revision: Option<Revision>,
    /// The `fail_on` kinds present in the diff (then nothing was applied).
    pub gate: Vec<&'static str>,
    /// What the batch does (or would do).
    pub changes: PlanSummary,
    pub warnings: Vec<Located>,
    pub diff: Diff,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered: Option<String>,
}

/// The tenant changed between the snapshot and the write: retry.
enum Attempt {
    Stale,
    Write(crate::service::WriteError),
}

impl From<crate::service::WriteError> for Attempt {
    fn from(e: crate::service::WriteError) -> Self {
        Attempt::Write(e)
    }
}

async fn apply_policy(
    State(state): State<AppState>,
    auth: TenantWrite,
    Query(q): Query<ApplyQuery>,
    PolicyBody(body): PolicyBody,
) -> Result<axum::Json<ApplyResponse>, Reject> {
    let name = q.name.clone().unwrap_or_else(|| "policy.yaml".to_string());
    let text = file_text(&body, &name)?;
    let kinds = gate_kinds(q.fail_on.as_slice())?;
    let format = q.format.clone();
    rendered(&empty_diff(), format.as_deref())?;
    let opts = DiffOptions { fan_out: q.fan_out.unwrap_or(diff::DEFAULT_FAN_OUT), ..DiffOptions::new(state.now()) };
    let mut out = apply_text(&state, &auth, text, name, kinds, opts, q.dry_run, q.allow_mass_removal).await?;
    out.rendered = rendered(&out.diff, format.as_deref())?;
    Ok(axum::Json(out))
}

/// Validates a policy file and applies it to the caller's tenant (or, with
/// `dry_run`, only computes the diff): `PUT .../policy` and the admin UI.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_text(
    state: &AppState,
    auth: &TenantWrite,
    text: String,
    name: String,
    kinds: Vec<&'static str>,
    opts: DiffOptions,
    dry_run: bool,
    allow_mass_removal: bool,
) -> Result<ApplyResponse, Reject> {
    let (mut policy, warnings) = compile_checked(&text, &name)?;
    if let Some(t) = policy.file.tenant.as_ref().filter(|t| t.value != auth.tenant) {
        let f = Finding::error(
            "tenant_mismatch",
            t.span,
            format!("the file is for tenant `{}`, but it is applied to tenant `{}`", t.value, auth.tenant),
            Some("apply it to its own tenant, or remove `tenant:` from the file".to_string()),
        );
        let report = validate::FileReport { file: name.clone(), readable: true, findings: vec![f] };
        return Err(invalid(&report));
    }
    policy.tenant = auth.tenant.clone();
    let hf = std::sync::Arc::clone(state.holdfast());
    let (tenant, actor) = (auth.tenant.clone(), auth.caller.name.clone());
    let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let base_name = format!("tenant:{tenant}");
    let out = blocking(move || -> Result<Result<ApplyResponse, Reject>, ApiError> {
        for _ in 0..APPLY_ATTEMPTS {
            let (current, seen) = match hf.tenant(&tenant) {
                Some(t) => {
                    let st = t.read();
                    (apply::snapshot(&st), st.revision())
                }
                None => (Vec::new(), 0),
            };
            let plan = apply::plan(&current, &policy);
            let d = match apply::diff(&tenant, &base_name, &current, &plan, &policy, &opts) {
                Ok(d) => d,
                Err(e) => return Ok(Err(e.into())),
            };
            let gate = d.gate(&kinds);
            let mut answer = ApplyResponse {
                tenant: tenant.clone(),
                file: policy.source.clone(),
                dry_run,
                applied: false,
                revision: None,
                gate,
                changes: plan.summary.clone(),
                warnings: warnings.clone(),
                diff: d,
                rendered: None,
            };
            if dry_run || !answer.gate.is_empty() {
                return Ok(Ok(answer));
            }
            let mass: Vec<&str> =
                answer.diff.risks.iter().filter(|r| r.flag == diff::MASS_REMOVAL).map(|r| r.message.as_str()).collect();
            if !mass.is_empty() && !allow_mass_removal {
                return Err(ApiError::new(
                    ErrorCode::MassRemoval,
                    format!(
                        "the apply {}; nothing was applied (check the file, or pass `allow_mass_removal=true`)",
                        mass.join(", ")
                    ),
                ));
            }
            let written = hf.write_with(&tenant, &actor, at_ms, |st| {
                if st.revision() != seen {
                    return Err(Attempt::Stale);
                }
                Ok((plan.changes.clone(), ()))
            });
            match written {
                Ok((revision, ())) => {
                    answer.applied = true;
                    answer.revision = Some(Revision(revision.unwrap_or_else(|| hf.revision())));
                    return Ok(Ok(answer));
                }
                Err(Attempt::Stale) => continue,
                Err(Attempt::Write(e)) => return Err(e.into()),
            }
        }
        Err(ApiError::new(
            ErrorCode::PreconditionFailed,
            format!("tenant `{tenant}` kept changing while the apply was computed; retry"),
        ))
    })
    .await??;
    Ok(out)
}

fn empty_diff() -> Diff {
    Diff {
        base: String::new(),
        head: String::new(),
        summary: Default::default(),
        risks: Vec::new(),
        subjects: Vec::new(),
        timings: Default::default(),
    }
}

// -------------------------------------------------------------- stateless

/// A file in a request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIn {
    pub name: String,
    pub content: String,
}

impl FileIn {
    /// The content, unless larger than a policy file may be.
    fn checked(&self) -> Result<&str, validate::FileReport> {
        if self.content.len() as u64 > MAX_POLICY_BYTES {
            let e = validate::ReadError::TooLarge { source_name: self.name.clone(), max: MAX_POLICY_BYTES };
            return Err(validate::FileReport { file: self.name.clone(), readable: false, findings: vec![e.finding()] });
        }
        Ok(&self.content)
    }

    fn text(&self) -> Result<&str, Reject> {
        self.checked().map_err(|r| invalid(&r))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesRequest {
    pub files: Vec<FileIn>,
    /// `now` for assertions whose context sets none (`test`); default: the server clock.
    #[serde(default)]
    pub now: Option<Timestamp>,
}

fn no_files(files: &[FileIn]) -> Result<(), ApiError> {
    if files.is_empty() {
        return Err(ApiError::invalid("`files` is empty: give at least one `{name, content}`"));
    }
    Ok(())
}

/// Every finding of every file: what `holdfast validate --format json` prints.
async fn validate_files(_caller: Caller, Json(req): Json<FilesRequest>) -> Result<axum::Json<Value>, Reject> {
    no_files(&req.files)?;
    if req.now.is_some() {
        return Err(ApiError::invalid("`now` is an option of `test`, not of `validate`").into());
    }
    let out = blocking(move || {
        let reports: Vec<_> = req
            .files
            .iter()
            .map(|f| match f.checked() {
                Ok(text) => validate::validate_text(text, &f.name),
                Err(unreadable) => unreadable,
            })
            .collect();
        let errors: usize = reports.iter().map(|r| r.errors()).sum();
        let warnings: usize = reports.iter().map(|r| r.warnings()).sum();
        Ok(json!({
            "files": reports.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "errors": errors,
            "warnings": warnings,
        }))
    })
    .await?;
    Ok(axum::Json(out))
}

/// Each file's assertions, run: what `holdfast test --format json` prints.
async fn test_files(
    State(state): State<AppState>,
    _caller: Caller,
    Json(req): Json<FilesRequest>,
) -> Result<axum::Json<Value>, Reject> {
    no_files(&req.files)?;
    let now = req.now.unwrap_or_else(|| state.now());
    let out = blocking(move || {
        let mut reports = Vec::new();
        for f in &req.files {
            let run = || -> Result<_, Reject> {
                let (policy, _) = compile_checked(f.text()?, &f.name)?;
                let own: Vec<_> = policy.file.assertions.iter().map(|a| (policy.source.clone(), a.clone())).collect();
                Ok(assertions::run_suite(policy, &own, now)?)
            };
            match run() {
                Ok(r) => reports.push(r),
                Err(e) => return Ok(Err(e)),
            }
        }
        let passed: usize = reports.iter().map(|r| r.passed).sum();
        let failed: usize = reports.iter().map(|r| r.failed).sum();
        Ok(Ok(json!({"reports": reports, "passed": passed, "failed": failed})))
    })
    .await??;
    Ok(axum::Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffRequest {
    pub base: FileIn,
    pub head: FileIn,
    /// [`GATE_KINDS`] whose presence is listed in `gate`.
    #[serde(default)]
    pub fail_on: Vec<String>,
    /// `json` (default), `text` or `markdown` (adds `rendered`).
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub fan_out: Option<usize>,
    /// `now` for assertions whose context sets none; default: the server clock.
    #[serde(default)]
    pub now: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
struct DiffResponse {
    #[serde(flatten)]
    diff: Diff,
    gate: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rendered: Option<String>,
}

/// The access diff of two files: what `holdfast diff --format json` prints,
/// with `gate` (the `fail_on` kinds present) and `rendered`.
async fn diff_files(
    State(state): State<AppState>,
    _caller: Caller,
    Json(req): Json<DiffRequest>,
) -> Result<axum::Json<Value>, Reject> {
    let kinds = gate_kinds(&req.fail_on)?;
    rendered(&empty_diff(), req.format.as_deref())?;
    let opts = DiffOptions {
        fan_out: req.fan_out.unwrap_or(diff::DEFAULT_FAN_OUT),
        ..DiffOptions::new(req.now.unwrap_or_else(|| state.now()))
    };
    let out = blocking(move || {
        let run = || -> Result<Value, Reject> {
            let (base, _) = compile_checked(req.base.text()?, &req.base.name)?;
            let (head, _) = compile_checked(req.head.text()?, &req.head.name)?;
            let d = diff::diff_policies(&base, &head, &opts)?;
            let gate = d.gate(&kinds);
            let rendered = rendered(&d, req.format.as_deref())?;
            serde_json::to_value(DiffResponse { diff: d, gate, rendered })
                .map_err(|e| Reject::Api(ApiError::internal(e)))
        };
        Ok(run())
    })
    .await??;
    Ok(axum::Json(out))
}
