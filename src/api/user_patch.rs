//! Layer Patch bodies of the user and app resources (`PATCH /apps/:app_uuid` and
//! `PATCH /apps/:app_uuid/users/:user_id`): the operations come from `crate::patch` through the
//! shared `LayerPatch` extractor.

pub use crate::http::extract::LayerPatch;
pub use crate::patch::{OpKind, Operation};

/// The wire name of an operation, for error messages.
pub fn operation_name(kind: OpKind) -> &'static str {
    kind.as_str()
}
