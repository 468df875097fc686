//! Block lists (server-api.md §12.2): `GET /users/:owner/blocks`, the v1 forms
//! `POST /users/:owner/blocks` and `DELETE /users/:owner/blocks/:user_id` (still accepted in
//! every version: no client breaks on it), and the `blocks` operations of a user PATCH. Owners
//! and blocked users need not exist anywhere, and owners may block themselves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::user_patch::{OpKind, Operation};
use super::users::{unsupported, user_ref, user_ref_value, UserId, UserPair};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::AppCaller;
use crate::http::extract::LayerJson;
use crate::http::{json_response, AppState};
use crate::store::{Store, StoreResult, Timestamp};
use crate::version::ApiVersion;

/// The net effect of the `blocks` operations of one PATCH. Operations apply in order, so a
/// `set` makes the result absolute (what came before it no longer matters) and without one the
/// result is a change relative to the stored list, written row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlocksChange {
    /// The whole new list.
    Replace(Vec<String>),
    /// Users to block and to unblock (disjoint: the last operation on a user wins).
    Delta {
        add: Vec<String>,
        remove: Vec<String>,
    },
}

impl Default for BlocksChange {
    fn default() -> Self {
        BlocksChange::Delta {
            add: Vec::new(),
            remove: Vec::new(),
        }
    }
}

impl BlocksChange {
    /// Folds one `blocks` operation in: `add`/`remove` take a user as `id` or `value` (Identity
    /// id or user id), `set` an array of them.
    pub fn apply(&mut self, op: &Operation) -> ApiResult<()> {
        if op.index.is_some() {
            return Err(unsupported(op));
        }
        match op.kind {
            OpKind::Add => self.block(single_user(op)?),
            OpKind::Remove => self.unblock(&single_user(op)?),
            OpKind::Set if op.id.is_none() => *self = BlocksChange::Replace(user_list(op)?),
            _ => return Err(unsupported(op)),
        }
        Ok(())
    }

    fn block(&mut self, user: String) {
        match self {
            BlocksChange::Replace(list) => push_new(list, user),
            BlocksChange::Delta { add, remove } => {
                remove.retain(|u| *u != user);
                push_new(add, user);
            }
        }
    }

    fn unblock(&mut self, user: &str) {
        match self {
            BlocksChange::Replace(list) => list.retain(|u| u != user),
            BlocksChange::Delta { add, remove } => {
                add.retain(|u| u != user);
                push_new(remove, user.to_owned());
            }
        }
    }

    /// Writes the change to `owner`'s block list.
    pub async fn save(
        &self,
        store: &dyn Store,
        app_id: uuid::Uuid,
        owner: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        match self {
            BlocksChange::Replace(list) => store.replace_blocks(app_id, owner, list, at).await,
            BlocksChange::Delta { add, remove } => {
                store.change_blocks(app_id, owner, add, remove, at).await
            }
        }
    }
}

fn push_new(list: &mut Vec<String>, user: String) {
    if !list.contains(&user) {
        list.push(user);
    }
}

/// The user of an `add`/`remove`: `id` when given (Layer's v2+ form), else `value`.
fn single_user(op: &Operation) -> ApiResult<String> {
    match (&op.id, &op.value) {
        (Some(id), _) => user_ref("blocks", id),
        (None, Some(value)) => user_ref_value("blocks", value),
        (None, None) => Err(unsupported(op)),
    }
}

/// The users of a `set`: an array of user ids or Identity ids.
fn user_list(op: &Operation) -> ApiResult<Vec<String>> {
    let items = op.value.as_ref().and_then(Value::as_array).ok_or_else(|| {
        ApiError::invalid_property("blocks", "set on blocks takes an array of users.")
    })?;
    let mut users = Vec::with_capacity(items.len());
    for item in items {
        push_new(&mut users, user_ref_value("blocks", item)?);
    }
    Ok(users)
}

/// `GET /users/:owner/blocks`: the blocked users, oldest block first; `{"user_id"}` objects before
/// 2.0, BasicIdentities since.
pub async fn list_blocks(
    State(state): State<AppState>,
    caller: AppCaller,
    version: ApiVersion,
    UserId(owner): UserId,
) -> ApiResult<Response> {
    let blocked = state.store.blocks(caller.app_id, &owner).await?;
    let identities = state
        .store
        .blocked_identities(caller.app_id, &owner)
        .await?;
    let list: Vec<Value> = blocked
        .iter()
        .map(|user| {
            let identity = identities.iter().find(|i| i.user_id == *user);
            crate::render::blocked_user(&state.urls, version, caller.app_id, user, identity)
        })
        .collect();
    Ok(json_response(StatusCode::OK, &list))
}

/// `POST /users/:owner/blocks` `{"user_id": "..."}` → 204 (the v1 form of an `add`).
pub async fn block(
    State(state): State<AppState>,
    caller: AppCaller,
    UserId(owner): UserId,
    LayerJson(body): LayerJson<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    let user = body
        .get("user_id")
        .ok_or_else(|| ApiError::missing_property("user_id"))
        .and_then(|value| user_ref_value("user_id", value))?;
    state
        .store
        .change_blocks(caller.app_id, &owner, &[user], &[], Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /users/:owner/blocks/:user_id` → 204 (the v1 form of a `remove`), also when the user
/// was not blocked.
pub async fn unblock(
    State(state): State<AppState>,
    caller: AppCaller,
    UserPair(owner, user): UserPair,
) -> ApiResult<StatusCode> {
    state
        .store
        .change_blocks(caller.app_id, &owner, &[], &[user], Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(body: &str) -> ApiResult<BlocksChange> {
        let mut change = BlocksChange::default();
        for op in crate::patch::Patch::from_slice(body.as_bytes()).unwrap().0 {
            change.apply(&op)?;
        }
        Ok(change)
    }

    fn users(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn adds_and_removes_fold_into_a_delta_where_the_last_one_wins() {
        let change = fold(
            r#"[{"operation":"add","property":"blocks","value":"a"},
                {"operation":"add","property":"blocks","id":"layer:///identities/b%2Fc"},
                {"operation":"remove","property":"blocks","value":"a"},
                {"operation":"remove","property":"blocks","value":"d"},
                {"operation":"add","property":"blocks","value":"layer:///identities/d"}]"#,
        )
        .unwrap();
        assert_eq!(
            change,
            BlocksChange::Delta {
                add: users(&["b/c", "d"]),
                remove: users(&["a"]),
            }
        );
    }

    #[test]
    fn a_set_makes_the_change_absolute() {
        let change = fold(
            r#"[{"operation":"add","property":"blocks","value":"x"},
                {"operation":"set","property":"blocks","value":["a","b","a"]},
                {"operation":"remove","property":"blocks","value":"a"},
                {"operation":"add","property":"blocks","value":"c"}]"#,
        )
        .unwrap();
        assert_eq!(change, BlocksChange::Replace(users(&["b", "c"])));
    }

    #[test]
    fn refuses_what_a_block_list_cannot_hold() {
        for body in [
            r#"[{"operation":"delete","property":"blocks"}]"#,
            r#"[{"operation":"set","property":"blocks","value":"a"}]"#,
            r#"[{"operation":"add","property":"blocks","value":["a"]}]"#,
            r#"[{"operation":"add","property":"blocks","value":5}]"#,
            r#"[{"operation":"add","property":"blocks","id":"layer:///conversations/x"}]"#,
            r#"[{"operation":"add","property":"blocks","value":"a","index":0}]"#,
        ] {
            let err = fold(body).unwrap_err();
            assert_eq!(err.kind().id, "invalid_property", "{body}");
        }
    }
}
