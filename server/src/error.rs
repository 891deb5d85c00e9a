//! The one error-code table: every failure has a stable code, an HTTP status and a problem type,
//! so GraphQL `extensions.code`, `userErrors.code` and REST problem documents never disagree.

use async_graphql::{Enum, ErrorExtensions, SimpleObject};
use serde::{Deserialize, Serialize};

/// Every error code the API can return.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request carried no valid credentials.
    Unauthenticated,
    /// The credentials are valid but may not do this.
    Forbidden,
    /// Too many requests for the tenant's plan.
    RateLimited,
    /// The tenant's plan has no calls left this period (Free; paid plans go into overage).
    QuotaExceeded,
    /// The request body or query string could not be read.
    BadRequest,
    /// The GraphQL document could not be parsed.
    GraphqlParseFailed,
    /// The GraphQL document is not valid against the schema (including depth and complexity limits).
    GraphqlValidationFailed,
    /// An automatic persisted query's hash is not known here yet: send the query with its hash.
    PersistedQueryNotFound,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body's media type (`Content-Type`) is missing or not one the endpoint reads.
    UnsupportedMediaType,
    /// An input value is malformed or out of range.
    InvalidInput,
    /// The referenced document does not exist (or belongs to another tenant).
    NotFound,
    /// A value that must be unique is already taken.
    AlreadyExists,
    /// No item with this SKU exists.
    UnknownSku,
    /// No location with this code exists.
    UnknownLocation,
    /// `expectedVersion` does not match the document's current version.
    VersionConflict,
    /// The document's status does not allow this transition (the message names the status).
    InvalidTransition,
    /// A conditional request header (`If-Match`) is required and missing.
    PreconditionRequired,
    /// `changeFromQuantity` does not match the current quantity.
    ChangeFromQuantityStale,
    /// The change would take a quantity below zero.
    InsufficientStock,
    /// The change would take a quantity beyond the largest supported value.
    QuantityOutOfRange,
    /// The idempotency key was already used with a different request.
    IdempotencyKeyParameterMismatch,
    /// A request with this idempotency key is still being processed.
    IdempotencyConcurrentRequest,
    /// A limit of the server or the plan was reached (the message names it).
    LimitExceeded,
    /// A subscriber fell too far behind its events and was dropped.
    SlowConsumer,
    /// Something failed inside the server; the request id identifies it in the logs.
    Internal,
    /// The database is out of reach for now (restarting, failing over, overloaded); retry.
    Unavailable,
}

impl ErrorCode {
    /// The wire name, e.g. `VERSION_CONFLICT`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Unauthenticated => "UNAUTHENTICATED",
            Forbidden => "FORBIDDEN",
            RateLimited => "RATE_LIMITED",
            QuotaExceeded => "QUOTA_EXCEEDED",
            BadRequest => "BAD_REQUEST",
            GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            InvalidInput => "INVALID_INPUT",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            UnknownSku => "UNKNOWN_SKU",
            UnknownLocation => "UNKNOWN_LOCATION",
            VersionConflict => "VERSION_CONFLICT",
            InvalidTransition => "INVALID_TRANSITION",
            PreconditionRequired => "PRECONDITION_REQUIRED",
            ChangeFromQuantityStale => "CHANGE_FROM_QUANTITY_STALE",
            InsufficientStock => "INSUFFICIENT_STOCK",
            QuantityOutOfRange => "QUANTITY_OUT_OF_RANGE",
            IdempotencyKeyParameterMismatch => "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
            IdempotencyConcurrentRequest => "IDEMPOTENCY_CONCURRENT_REQUEST",
            LimitExceeded => "LIMIT_EXCEEDED",
            SlowConsumer => "SLOW_CONSUMER",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
        }
    }

    /// The HTTP status a REST response (or a request-level GraphQL failure) carries.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            Unauthenticated => 401,
            Forbidden => 403,
            RateLimited => 429,
            QuotaExceeded => 429,
            BadRequest | GraphqlParseFailed | GraphqlValidationFailed | PersistedQueryNotFound => {
                400
            }
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            InvalidInput | UnknownSku | UnknownLocation | InsufficientStock
            | QuantityOutOfRange => 422,
            IdempotencyKeyParameterMismatch => 422,
            NotFound => 404,
            AlreadyExists
            | IdempotencyConcurrentRequest
            | ChangeFromQuantityStale
            | InvalidTransition => 409,
            VersionConflict => 412,
            PreconditionRequired => 428,
            LimitExceeded => 429,
            SlowConsumer => 409,
            Internal => 500,
            Unavailable => 503,
        }
    }

    /// The RFC 9457 problem type: a stable URI naming the code's documentation.
    pub fn problem_type(self) -> String {
        format!("/docs/errors#{}", self.as_str().to_ascii_lowercase())
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }

    /// What the code means, for the error reference page.
    pub fn description(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Unauthenticated => {
                "The request carried no valid credentials. Send Authorization: Bearer <api key>."
            }
            Forbidden => "The credentials are valid but their role may not do this.",
            RateLimited => "Too many requests for the tenant's plan. Wait for Retry-After.",
            QuotaExceeded => {
                "The plan's calls for this period are used up (Free plans stop; paid plans are counted as overage). Upgrade the plan or wait for the period to end (Retry-After)."
            }
            BadRequest => "The request body, query string or a header could not be read.",
            GraphqlParseFailed => "The GraphQL document could not be parsed.",
            PersistedQueryNotFound => {
                "The request sent only the SHA-256 hash of its query (an automatic persisted query, extensions.persistedQuery) and the server does not know it yet. Send it again with the query text and the hash; later requests can send the hash alone."
            }
            GraphqlValidationFailed => {
                "The GraphQL document or its variables do not fit the schema, or it is too deep or too complex."
            }
            PayloadTooLarge => "The request body is larger than the server accepts.",
            UnsupportedMediaType => {
                "The body's Content-Type is missing or not supported: send application/json."
            }
            InvalidInput => "An input value is malformed or out of range; `field` names it.",
            NotFound => "No such document in this tenant.",
            AlreadyExists => "A value that must be unique (SKU, location code) is taken.",
            UnknownSku => "No item has this SKU.",
            UnknownLocation => "No location has this code.",
            VersionConflict => {
                "The document changed since you read it: read it again and retry with its current version."
            }
            PreconditionRequired => "This update needs If-Match with the ETag you read.",
            InvalidTransition => {
                "The document's current status does not allow this; the message names the status."
            }
            ChangeFromQuantityStale => {
                "The quantity is no longer what changeFromQuantity says: read the level again."
            }
            InsufficientStock => "The change would take a quantity below zero.",
            QuantityOutOfRange => {
                "The change would take a quantity past the largest supported value."
            }
            IdempotencyKeyParameterMismatch => {
                "This idempotency key was used with a different request. Use a new key."
            }
            IdempotencyConcurrentRequest => {
                "A request with this idempotency key is still running. Retry after it ends."
            }
            LimitExceeded => {
                "A limit of the server or the plan was reached; the message names it and its value."
            }
            SlowConsumer => {
                "The subscription fell too far behind its events and was ended. Subscribe again \
                 and catch up from the event log (events(after: <last position>))."
            }
            Internal => "Something failed inside the server. Quote the request id.",
            Unavailable => {
                "The database could not be reached or dropped the connection. A write may or \
                 may not have been applied: retry after Retry-After seconds with the same \
                 idempotency key, which applies it at most once."
            }
        }
    }

    /// The error reference page the problem types point at.
    pub fn reference_html() -> String {
        let mut html = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>TWH error codes</title></head><body><h1>Error codes</h1><table><tr><th>code</th><th>HTTP status</th><th>meaning</th></tr>",
        );
        for code in Self::ALL {
            html.push_str(&format!(
                "<tr id=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                code.as_str().to_ascii_lowercase(),
                code.as_str(),
                code.http_status(),
                code.description()
            ));
        }
        html.push_str("</table></body></html>");
        html
    }

    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 27] = {
        use ErrorCode::*;
        [
            Unauthenticated,
            Forbidden,
            RateLimited,
            QuotaExceeded,
            BadRequest,
            GraphqlParseFailed,
            GraphqlValidationFailed,
            PersistedQueryNotFound,
            PayloadTooLarge,
            UnsupportedMediaType,
            InvalidInput,
            NotFound,
            AlreadyExists,
            UnknownSku,
            UnknownLocation,
            VersionConflict,
            InvalidTransition,
            PreconditionRequired,
            ChangeFromQuantityStale,
            InsufficientStock,
            QuantityOutOfRange,
            IdempotencyKeyParameterMismatch,
            IdempotencyConcurrentRequest,
            LimitExceeded,
            SlowConsumer,
            Internal,
            Unavailable,
        ]
    };
}

/// A business failure of a mutation, returned in its payload's `userErrors`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Path to the input field at fault, e.g. `["input", "changes", "2", "delta"]`.
    pub field: Option<Vec<String>>,
    /// What went wrong and what to do next.
    pub message: String,
}

impl UserError {
    pub fn new(code: ErrorCode, field: &[&str], message: impl Into<String>) -> Self {
        Self {
            code,
            field: if field.is_empty() {
                None
            } else {
                Some(field.iter().map(|s| (*s).to_owned()).collect())
            },
            message: message.into(),
        }
    }
}

/// A domain operation's failure: either a business rule (returned as `userErrors`) or an
/// unexpected fault (logged with the request id, never shown in detail).
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0:?}")]
    User(Vec<UserError>),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl DomainError {
    pub fn user(error: UserError) -> Self {
        Self::User(vec![error])
    }
}

impl From<sea_orm::DbErr> for DomainError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(err))
    }
}

/// A request-level GraphQL error with `extensions.code` set from the table.
pub fn request_error(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// What a caller is told when the database is out of reach. A connection can drop after a
/// COMMIT was sent and before its answer came back, so a write's outcome is not known.
pub const UNAVAILABLE_MESSAGE: &str = "the database is out of reach or dropped the connection; a write may or may not have been applied - Hint: retry shortly, with the same idempotency key for a write so that it applies at most once";

/// Marks an `UNAVAILABLE` error caused by a lost connection (not a pool timeout): a read that
/// met it can be run again at once.
pub struct ConnectionLost;

/// Logs an unexpected failure with the request id and returns an opaque GraphQL error:
/// `UNAVAILABLE` when the database was out of reach, `INTERNAL` otherwise.
pub fn internal_error(request_id: &str, err: &anyhow::Error) -> async_graphql::Error {
    if let Some(outage) = crate::db::outage_in(err) {
        tracing::warn!(
            request.id = request_id,
            error = format!("{err:#}"),
            "database unavailable"
        );
        let mut error = async_graphql::Error::new(UNAVAILABLE_MESSAGE).extend_with(|_, ext| {
            ext.set("code", ErrorCode::Unavailable.as_str());
            ext.set("requestId", request_id);
        });
        if outage == crate::db::Outage::ConnectionLost {
            error.source = Some(std::sync::Arc::new(ConnectionLost));
        }
        return error;
    }
    tracing::error!(
        request.id = request_id,
        error = format!("{err:#}"),
        "internal error"
    );
    async_graphql::Error::new(format!(
        "internal error; quote request id {request_id} when reporting it"
    ))
    .extend_with(|_, ext| {
        ext.set("code", ErrorCode::Internal.as_str());
        ext.set("requestId", request_id);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_unique_and_match_serde() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn only_internal_and_unavailable_are_server_errors() {
        for code in ErrorCode::ALL {
            assert_eq!(
                code.http_status() >= 500,
                matches!(code, ErrorCode::Internal | ErrorCode::Unavailable),
                "{code:?}"
            );
        }
    }
}
