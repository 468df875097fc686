//! Layer Patch bodies of the user and app resources (`PATCH /apps/:app_uuid` and
//! `PATCH /apps/:app_uuid/users/:user_id`): the `LayerPatch` extractor and the operations it
//! yields.
//!
//! STAND-IN: `parse_user_patch` and the operation types below mirror the API of `crate::patch`
//! (written in parallel). Once it lands, `parse_user_patch` becomes
//! `crate::patch::Patch::from_slice(bytes).map(|patch| patch.0).map_err(patch_error)` (with
//! `patch_error` mapping `is_structural()` to 400 `invalid_request`, else 422), the types below
//! give way to `pub use crate::patch::{OpKind, Operation};`, and nothing else changes.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// The four Layer Patch operations (layer-patch.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Remove,
    Set,
    Delete,
}

/// The `index` of an array operation (never accepted by the user and app resources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Index {
    /// A position; `-1` is the end.
    At(i64),
    /// `"-"`: the end.
    End,
}

/// One operation of a Layer Patch.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OpKind,
    /// The property as sent.
    pub property: String,
    /// `property` split on unescaped dots (`\.` is a literal dot).
    pub path: Vec<String>,
    pub value: Option<Value>,
    pub id: Option<String>,
    pub index: Option<Index>,
}

/// The wire name of an operation, for error messages.
pub fn operation_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Add => "add",
        OpKind::Remove => "remove",
        OpKind::Set => "set",
        OpKind::Delete => "delete",
    }
}

/// A PATCH body parsed into its operations; a malformed one is 400 `invalid_request`. (The
/// content type was checked by `compat::negotiate`.)
pub struct LayerPatch(pub Vec<Operation>);

impl<S: Send + Sync> FromRequest<S> for LayerPatch {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            ApiError::for_status(rejection.status())
                .unwrap_or_else(|| ApiError::invalid_request(rejection.body_text()))
        })?;
        parse_user_patch(&bytes).map(LayerPatch)
    }
}

/// Parses a Layer Patch document: a JSON array of operations, each with a known `operation`, a
/// non-empty `property`, and a `value` or `id` unless it is a `delete`. (Stand-in for
/// `crate::patch::Patch::from_slice`; see the module comment.)
pub fn parse_user_patch(bytes: &[u8]) -> ApiResult<Vec<Operation>> {
    let document: Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::invalid_request(format!("Invalid JSON body: {err}")))?;
    let Value::Array(items) = document else {
        return Err(ApiError::invalid_request(
            "A Layer Patch body must be an array of operations.",
        ));
    };
    items.into_iter().map(parse_operation).collect()
}

fn parse_operation(item: Value) -> ApiResult<Operation> {
    let Value::Object(mut fields) = item else {
        return Err(ApiError::invalid_request(
            "Each Layer Patch operation must be an object.",
        ));
    };
    let kind = match fields.get("operation").and_then(Value::as_str) {
        Some("add") => OpKind::Add,
        Some("remove") => OpKind::Remove,
        Some("set") => OpKind::Set,
        Some("delete") => OpKind::Delete,
        _ => {
            return Err(ApiError::invalid_request(
                "Each operation needs an operation of add, remove, set or delete.",
            ))
        }
    };
    let property = match fields.remove("property") {
        Some(Value::String(p)) if !p.is_empty() => p,
        _ => {
            return Err(ApiError::invalid_request(
                "Each operation needs a non-empty property.",
            ))
        }
    };
    let id = match fields.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "An operation's id must be a string.",
            ))
        }
    };
    let value = fields.remove("value");
    if kind != OpKind::Delete && value.is_none() && id.is_none() {
        return Err(ApiError::invalid_request(format!(
            "The {} operation on {property} needs a value or an id.",
            operation_name(kind)
        )));
    }
    let index = match fields.remove("index") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "-" => Some(Index::End),
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().map(Index::At),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "An operation's index must be an integer.",
            ))
        }
    };
    Ok(Operation {
        kind,
        path: split_path(&property),
        property,
        value,
        id,
        index,
    })
}

/// Splits a property path on dots; `\.` is a literal dot, a backslash before anything else is
/// dropped (layer-patch.md §3.1).
fn split_path(property: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    let mut chars = property.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    segments.last_mut().expect("never empty").push(next);
                }
            }
            '.' => segments.push(String::new()),
            c => segments.last_mut().expect("never empty").push(c),
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operations_with_value_or_id() {
        let ops = parse_user_patch(
            br#"[{"operation":"add","property":"blocks","id":"layer:///identities/a"},
                 {"operation":"set","property":"suspended","value":true}]"#,
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].kind, OpKind::Add);
        assert_eq!(ops[0].id.as_deref(), Some("layer:///identities/a"));
        assert_eq!(ops[1].path, ["suspended"]);
        assert_eq!(ops[1].value, Some(Value::Bool(true)));
    }

    #[test]
    fn rejects_malformed_documents() {
        for body in [
            "",
            "{}",
            "[1]",
            r#"[{"property":"blocks","value":"a"}]"#,
            r#"[{"operation":"move","property":"blocks","value":"a"}]"#,
            r#"[{"operation":"add","value":"a"}]"#,
            r#"[{"operation":"add","property":"blocks"}]"#,
            r#"[{"operation":"add","property":"blocks","id":5}]"#,
        ] {
            let err = parse_user_patch(body.as_bytes()).unwrap_err();
            assert_eq!(err.kind().id, "invalid_request", "{body}");
        }
    }

    #[test]
    fn splits_paths_with_escaped_dots() {
        assert_eq!(split_path("metadata.a\\.b.c"), ["metadata", "a.b", "c"]);
        assert_eq!(split_path("blocks"), ["blocks"]);
    }
}
