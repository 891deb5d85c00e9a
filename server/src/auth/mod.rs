//! Authentication: API keys (stored hashed, compared in constant time), the caller's
//! `Principal`, roles and the guards resolvers use.

mod api_key;

pub mod guards;
pub mod jwt;
pub mod keys;

pub use api_key::{ApiKeyKind, GeneratedKey, KeyCache, authenticate, generate_key};

/// Resolves a bearer token (an API key or a console session's JWT) to a principal; `None` for
/// anything unknown, expired, revoked or suspended.
pub async fn verify(app: &crate::app::App, token: &str) -> anyhow::Result<Option<Principal>> {
    if jwt::looks_like_jwt(token) {
        let Some(claims) = app.sessions.verify(token) else {
            return Ok(None);
        };
        return verify_session(app, token, claims).await;
    }
    authenticate(&app.db, &app.key_cache, token).await
}

/// The principal of a session whose token already verified as `claims`: valid while the key
/// that minted it is. An operator's console session is no tenant's credential.
pub async fn verify_session(
    app: &crate::app::App,
    token: &str,
    claims: jwt::Claims,
) -> anyhow::Result<Option<Principal>> {
    if claims.op {
        return Ok(None);
    }
    api_key::authenticate_session(&app.db, &app.key_cache, token, claims).await
}

/// What a request without a usable credential is told.
pub const MISSING_CREDENTIALS: &str =
    "missing or invalid credentials - Hint: send `Authorization: Bearer <api key>`";

use async_graphql::{Context, Enum};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, request_error};

/// What a credential may do. Ordered from most to least powerful.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "developer" => Role::Developer,
            "operator" => Role::Operator,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }

    /// Order of privilege: owner above admin above developer above operator above viewer.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 5,
            Role::Admin => 4,
            Role::Developer => 3,
            Role::Operator => 2,
            Role::Viewer => 1,
        }
    }

    /// Everyone but viewers may change stock and the catalog.
    pub fn can_write(self) -> bool {
        self != Role::Viewer
    }
}

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub tenant_id: String,
    /// The API key, or for a console session the key that minted it.
    pub key_id: String,
    pub role: Role,
    /// The console session's id (`jti`), when the caller is one.
    pub session: Option<String>,
}

impl Principal {
    /// How the ledger and the audit trail name this caller: the key, and the session when the
    /// call came through one.
    pub fn actor(&self) -> String {
        match &self.session {
            Some(session) => format!("api_key:{}/session:{session}", self.key_id),
            None => format!("api_key:{}", self.key_id),
        }
    }
}

/// The platform operator (`TWH_ADMIN_TOKEN`): runs the operator operations (tenants, plans,
/// suspension) and nothing of a tenant's.
#[derive(Clone, Copy, Debug)]
pub struct Operator;

/// Who a request runs as.
#[derive(Clone, Debug)]
pub enum Caller {
    Tenant(Principal),
    Operator,
}

/// The platform operator, or `FORBIDDEN`.
pub fn operator(ctx: &Context<'_>) -> async_graphql::Result<Operator> {
    ctx.data_opt::<Operator>().copied().ok_or_else(|| {
        request_error(
            ErrorCode::Forbidden,
            "only the platform operator (TWH_ADMIN_TOKEN) may do this",
        )
    })
}

/// Per-request data the HTTP layer hands to resolvers.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub request_id: String,
    /// The request's metering, shared by every execution of the request.
    pub meter: std::sync::Arc<crate::tenancy::limits::RequestMeter>,
}

impl RequestMeta {
    pub fn new(request_id: &str) -> Self {
        Self {
            request_id: request_id.to_owned(),
            meter: Default::default(),
        }
    }
}

/// The caller, or `UNAUTHENTICATED`.
pub fn principal<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Principal> {
    if ctx.data_opt::<Operator>().is_some() {
        return Err(request_error(
            ErrorCode::Forbidden,
            "the platform operator credential runs operator operations only (tenants, createTenant, updateTenantPlan, suspendTenant, resumeTenant); use a tenant's API key for its data",
        ));
    }
    ctx.data_opt::<Principal>()
        .ok_or_else(|| request_error(ErrorCode::Unauthenticated, MISSING_CREDENTIALS))
}

/// The caller if it may write, or `FORBIDDEN`.
pub fn writer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Principal> {
    let principal = principal(ctx)?;
    if principal.role.can_write() {
        Ok(principal)
    } else {
        Err(request_error(
            ErrorCode::Forbidden,
            format!("the {} role may not change data", principal.role.as_str()),
        ))
    }
}

pub fn request_id(ctx: &Context<'_>) -> String {
    ctx.data_opt::<RequestMeta>()
        .map(|m| m.request_id.clone())
        .unwrap_or_default()
}
