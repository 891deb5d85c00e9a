//! The catalog: items (SKUs) and locations, with their validated input types.
//! Every read and write is scoped to the caller's tenant.

pub mod items;
pub mod locations;

use crate::error::{ErrorCode, UserError};

pub const MAX_CODE_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// Checks an identifier-like code (SKU, location code): 1 to 64 visible characters, no spaces.
pub fn parse_code(raw: &str, field: &[&str], what: &str) -> Result<String, UserError> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > MAX_CODE_LEN {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            field,
            format!("a {what} is 1 to {MAX_CODE_LEN} characters"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            field,
            format!("a {what} may not contain spaces or control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Checks a human-readable text of at most `max` characters; `required` refuses blanks.
pub fn parse_text(
    raw: &str,
    field: &[&str],
    max: usize,
    required: bool,
) -> Result<String, UserError> {
    let value = raw.trim();
    if (required && value.is_empty()) || value.chars().count() > max {
        let need = if required { "1" } else { "0" };
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            field,
            format!("must be {need} to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            field,
            "may not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

pub fn parse_attributes(
    value: serde_json::Value,
    field: &[&str],
) -> Result<serde_json::Value, UserError> {
    if !value.is_object() {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            field,
            "attributes must be a JSON object",
        ));
    }
    if serde_json::to_vec(&value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > MAX_ATTRIBUTES_BYTES
    {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            field,
            format!("attributes may take at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
    Ok(value)
}

/// The error for a stale `expectedVersion`, naming the current one.
pub fn version_conflict(what: &str, current: i64) -> UserError {
    UserError::new(
        ErrorCode::VersionConflict,
        &["expectedVersion"],
        format!(
            "the {what} has changed: its current version is {current} - Hint: read it again and retry with expectedVersion {current}"
        ),
    )
}

pub fn not_found(what: &str) -> UserError {
    UserError::new(
        ErrorCode::NotFound,
        &["id"],
        format!("no {what} has this id"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_trimmed_and_bounded() {
        assert_eq!(parse_code("  ABC-1 ", &["sku"], "SKU").unwrap(), "ABC-1");
        assert!(parse_code("", &["sku"], "SKU").is_err());
        assert!(parse_code("A B", &["sku"], "SKU").is_err());
        assert!(parse_code(&"x".repeat(65), &["sku"], "SKU").is_err());
        assert!(parse_code(&"é".repeat(64), &["sku"], "SKU").is_ok());
    }

    #[test]
    fn attributes_must_be_small_objects() {
        assert!(parse_attributes(serde_json::json!({"a": 1}), &[]).is_ok());
        assert!(parse_attributes(serde_json::json!([1]), &[]).is_err());
        let big = serde_json::json!({"a": "x".repeat(MAX_ATTRIBUTES_BYTES)});
        assert_eq!(
            parse_attributes(big, &[]).unwrap_err().code,
            ErrorCode::InvalidInput
        );
    }
}
