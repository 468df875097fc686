//! Conversations: create (distinct semantics), Layer Patch of participants and metadata,
//! deletion for everyone or for one user, mark-all-read.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::LimitSettings;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::extract::patch_error;
use crate::patch::{OpKind, Operation, Patch};
use crate::store::{
    Conversation, ConversationChange, CreateConversation, Deleted, DynStore, NewConversation,
    Timestamp, Updated, UserConversation,
};

#[derive(Debug, Clone)]
pub struct CreateInput {
    pub id: Option<Uuid>,
    pub participants: Vec<String>,
    pub distinct: bool,
    /// `None` when absent or `null` (which matches any existing distinct conversation).
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug)]
pub enum Created {
    New(Conversation),
    /// The existing distinct conversation with these participants (200 + Location).
    Existing(Conversation),
}

/// Why a create returned someone else's conversation as an error.
#[derive(Debug)]
pub enum CreateConflict {
    /// A distinct conversation with these participants has other metadata (409 `conflict`).
    Metadata(Conversation),
    /// The requested id is taken (409 `id_in_use`).
    IdInUse(Conversation),
}

/// Participants as given, deduplicated (first occurrence wins) and within the limit.
pub fn participant_list(users: Vec<String>, limits: &LimitSettings) -> ApiResult<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let list: Vec<String> = users
        .into_iter()
        .filter(|u| seen.insert(u.clone()))
        .collect();
    if list.len() > limits.max_participants {
        return Err(ApiError::invalid_property(
            "participants",
            format!(
                "A conversation may have at most {} participants.",
                limits.max_participants
            ),
        ));
    }
    Ok(list)
}

/// The identity of a participant set, order-insensitive (what makes two distinct
/// conversations the same one).
pub fn distinct_key(participants: &[String]) -> String {
    let mut sorted: Vec<&String> = participants.iter().collect();
    sorted.sort();
    let joined = serde_json::to_string(&sorted).unwrap_or_default();
    crate::secrets::sha256_hex(&joined)
}

/// Metadata values are strings or objects of the same, all the way down (server-api.md §3.3).
pub fn check_metadata(metadata: &Map<String, Value>, property: &str) -> ApiResult<()> {
    fn valid(value: &Value, depth: usize) -> bool {
        match value {
            Value::String(_) => true,
            Value::Object(map) => depth < 32 && map.values().all(|v| valid(v, depth + 1)),
            _ => false,
        }
    }
    if metadata.values().all(|v| valid(v, 0)) {
        Ok(())
    } else {
        Err(ApiError::invalid_property(
            property,
            "Metadata values must be strings or objects whose values are strings or objects.",
        ))
    }
}

/// Whether a Layer Patch operation is one metadata accepts (conversations and channels alike):
/// `set` at any depth, `delete` of a key (not of the whole object).
pub fn is_metadata_operation(op: &Operation) -> bool {
    op.root() == "metadata"
        && match op.kind {
            OpKind::Set => true,
            OpKind::Delete => op.path.len() > 1,
            OpKind::Add | OpKind::Remove => false,
        }
}

/// The `metadata` of a document a Layer Patch was applied to, checked.
pub fn patched_metadata(doc: &mut Value) -> ApiResult<Map<String, Value>> {
    let metadata = match doc["metadata"].take() {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => {
            return Err(ApiError::invalid_property(
                "metadata",
                "metadata must be an object.",
            ))
        }
    };
    check_metadata(&metadata, "metadata")?;
    Ok(metadata)
}

/// Refuses participants the acting user blocked (Client API: `participant_blocked`).
async fn check_not_blocked(
    store: &DynStore,
    app_id: Uuid,
    actor: &str,
    participants: &[String],
) -> ApiResult<()> {
    let blocked = store.blocks(app_id, actor).await?;
    if let Some(user) = participants.iter().find(|p| blocked.contains(p)) {
        return Err(ApiError::new(
            ErrorKind::PARTICIPANT_BLOCKED,
            format!("You have blocked {user:?}; they cannot be a participant."),
        )
        .with_data(serde_json::json!({ "property": "participants" })));
    }
    Ok(())
}

pub async fn create(
    store: &DynStore,
    limits: &LimitSettings,
    app_id: Uuid,
    actor: Option<&str>,
    input: CreateInput,
) -> ApiResult<Result<Created, CreateConflict>> {
    let mut users = input.participants;
    if let Some(actor) = actor {
        // The creator is always a participant of what they create.
        if !users.iter().any(|u| u == actor) {
            users.insert(0, actor.to_owned());
        }
    }
    let participants = participant_list(users, limits)?;
    if let Some(actor) = actor {
        check_not_blocked(store, app_id, actor, &participants).await?;
    }
    if let Some(metadata) = &input.metadata {
        check_metadata(metadata, "metadata")?;
    }
    let new = NewConversation {
        app_id,
        id: input.id.unwrap_or_else(Uuid::new_v4),
        created_at: Timestamp::now(),
        distinct_key: input.distinct.then(|| distinct_key(&participants)),
        participants,
        metadata: input.metadata.clone().unwrap_or_default(),
    };
    Ok(match store.create_conversation(&new).await? {
        CreateConversation::Created(c) => Ok(Created::New(c)),
        CreateConversation::IdInUse(c) => Err(CreateConflict::IdInUse(c)),
        CreateConversation::DistinctExists(c) => match &input.metadata {
            Some(metadata) if *metadata != c.metadata => Err(CreateConflict::Metadata(c)),
            _ => Ok(Created::Existing(c)),
        },
    })
}

/// The conversation for the system: 404 when unknown, 410 when deleted.
pub async fn system_conversation(
    store: &DynStore,
    app_id: Uuid,
    id: Uuid,
) -> ApiResult<Conversation> {
    let conversation = store
        .conversation(app_id, id)
        .await?
        .ok_or_else(not_found)?;
    if conversation.deleted_at.is_some() {
        return Err(gone());
    }
    Ok(conversation)
}

/// The conversation as `user` sees it: 404 unless they are or were a member.
pub async fn user_conversation(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
) -> ApiResult<UserConversation> {
    store
        .user_conversation(app_id, user, id)
        .await?
        .ok_or_else(not_found)
}

pub fn not_found() -> ApiError {
    ApiError::not_found("The conversation could not be found.")
}

pub fn gone() -> ApiError {
    ApiError::new(ErrorKind::NOT_FOUND, "The conversation has been deleted.")
        .with_status(axum::http::StatusCode::GONE)
}

fn no_longer_participant() -> ApiError {
    super::access_denied("You are no longer a participant in the specified Conversation.")
}

/// Only participants may change a conversation through the Client API.
async fn require_participant(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
) -> ApiResult<()> {
    let view = user_conversation(store, app_id, user, id).await?;
    if !view.membership.is_participant {
        return Err(no_longer_participant());
    }
    Ok(())
}

fn forbidden_operation(index: usize, kind: OpKind, property: &str) -> ApiError {
    ApiError::invalid_property(
        property,
        format!(
            "operation {index} ({} {property:?}): conversations accept add/remove/set on \
             participants and set/delete on metadata only.",
            kind.as_str()
        ),
    )
}

/// Checks every operation against what conversations accept and turns participant references
/// (user ids or Identity ids, in `value` or `id`) into plain user ids, so that the generic Layer
/// Patch set semantics apply to them.
fn normalize_patch(patch: Patch) -> ApiResult<Patch> {
    let mut ops = Vec::with_capacity(patch.0.len());
    for (index, mut op) in patch.0.into_iter().enumerate() {
        match (op.root(), op.kind, op.path.len()) {
            ("participants", OpKind::Add | OpKind::Remove, 1) => {
                let reference = match (&op.id, &op.value) {
                    (Some(id), _) => id.clone(),
                    (None, Some(Value::String(value))) => value.clone(),
                    _ => {
                        return Err(ApiError::invalid_property(
                            "participants",
                            format!(
                            "operation {index}: a participant is a user id or identity id string."
                        ),
                        ))
                    }
                };
                op.value = Some(Value::String(super::user_ref("participants", &reference)?));
                op.id = None;
                op.index = None;
            }
            ("participants", OpKind::Set, 1) => {
                let Some(Value::Array(values)) = &op.value else {
                    return Err(ApiError::invalid_property(
                        "participants",
                        format!("operation {index}: set participants takes an array."),
                    ));
                };
                let users = values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => super::user_ref("participants", s).map(Value::String),
                        _ => Err(ApiError::invalid_property(
                            "participants",
                            "A participant is a user id or identity id string.",
                        )),
                    })
                    .collect::<ApiResult<Vec<_>>>()?;
                op.value = Some(Value::Array(users));
            }
            _ if is_metadata_operation(&op) => {}
            _ => return Err(forbidden_operation(index, op.kind, &op.property)),
        }
        ops.push(op);
    }
    Ok(Patch(ops))
}

/// Applies a Layer Patch to participants and metadata, atomically: it validates and applies
/// everything on a copy, and writes only if the conversation did not change meanwhile (else
/// it starts over on the new state).
pub async fn patch(
    store: &DynStore,
    limits: &LimitSettings,
    app_id: Uuid,
    actor: Option<&str>,
    id: Uuid,
    body: &[u8],
) -> ApiResult<()> {
    let patch = normalize_patch(Patch::from_slice(body).map_err(patch_error)?)?;
    if let Some(user) = actor {
        require_participant(store, app_id, user, id).await?;
    }
    for _ in 0..8 {
        let conversation = system_conversation(store, app_id, id).await?;
        let mut doc = serde_json::json!({
            "participants": conversation.participants,
            "metadata": conversation.metadata,
        });
        patch.apply(&mut doc, &|_| None).map_err(patch_error)?;
        let participants: Vec<String> = serde_json::from_value(doc["participants"].take())
            .map_err(|_| {
                ApiError::invalid_property("participants", "participants must be user ids.")
            })?;
        let metadata = patched_metadata(&mut doc)?;
        let participants = participant_list(participants, limits)?;
        if let Some(user) = actor {
            let added: Vec<String> = participants
                .iter()
                .filter(|p| !conversation.participants.contains(p))
                .cloned()
                .collect();
            check_not_blocked(store, app_id, user, &added).await?;
        }
        let same_set = {
            let mut a = participants.clone();
            let mut b = conversation.participants.clone();
            a.sort();
            b.sort();
            a == b
        };
        let change = ConversationChange {
            // Changing who takes part ends distinctness (server-api.md §3.3).
            distinct_key: if same_set {
                conversation.distinct_key.clone()
            } else {
                None
            },
            participants,
            metadata,
        };
        match store
            .update_conversation(app_id, id, conversation.revision, &change, Timestamp::now())
            .await?
        {
            Updated::Done => return Ok(()),
            Updated::Stale => continue,
            Updated::NotFound => return Err(gone()),
        }
    }
    Err(ApiError::service_unavailable(
        "The conversation is changing too fast; try again.",
    ))
}

/// How a conversation is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// For everyone.
    AllParticipants,
    /// For the acting user only; `leave` also ends their participation.
    MyDevices { leave: bool },
}

pub async fn delete(
    store: &DynStore,
    app_id: Uuid,
    actor: Option<&str>,
    id: Uuid,
    mode: DeleteMode,
) -> ApiResult<()> {
    let now = Timestamp::now();
    match (actor, mode) {
        (None, _) => match store.delete_conversation(app_id, id, now).await? {
            // Deleting twice succeeds (server-api.md §5.4).
            Deleted::Done | Deleted::AlreadyDeleted => Ok(()),
            Deleted::NotFound => Err(not_found()),
        },
        (Some(user), DeleteMode::AllParticipants) => {
            require_participant(store, app_id, user, id).await?;
            match store.delete_conversation(app_id, id, now).await? {
                Deleted::Done | Deleted::AlreadyDeleted => Ok(()),
                Deleted::NotFound => Err(not_found()),
            }
        }
        (Some(user), DeleteMode::MyDevices { leave }) => {
            user_conversation(store, app_id, user, id).await?;
            if store
                .hide_conversation(app_id, user, id, leave, now)
                .await?
            {
                Ok(())
            } else {
                Err(not_found())
            }
        }
    }
}

/// Marks the user's messages read up to `position` (all when `None`); the position used.
pub async fn mark_all_read(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    position: Option<i64>,
) -> ApiResult<i64> {
    store
        .mark_all_read(app_id, user, id, position, Timestamp::now())
        .await?
        .ok_or_else(not_found)
}
