//! Channels (client-api.md §3.10, API 2.0+): named rooms of up to `limits.max_channel_members`
//! members with one history everybody sees alike. Create (client-chosen id, unique name), metadata
//! by Layer Patch, delete, membership, and channel messages.
//!
//! Storage: channels have their own tables (`channels`, `channel_members`, `channel_messages`)
//! rather than being conversations of another kind. Nearly every conversation rule (receipts,
//! per-user deletion and history, distinctness, blocks, implicit follows, unread counts,
//! `last_message`) does not apply to channels; sharing the tables would put a `kind` test into
//! every conversation query. Channel messages keep their immutable parts as JSON in the row. The
//! one thing both share is the message id space (`layer:///messages/<uuid>`): each insert checks
//! the other table, so a client-chosen id is taken by whichever message came first.
//!
//! Who may do what. Layer documented none of it; the SDK lets any member add, remove, join and
//! leave, and finds a channel by name through the `conflict` of a create. So:
//! - Channels are open: whoever knows a channel (its name, through that conflict, or its id) may
//!   join it (`PUT …/members/<self>`).
//! - To anybody else a channel does not exist: only members see it, its members and messages,
//!   and post (404 `not_found` otherwise, whatever the id).
//! - Members may add other users (who may leave) and change metadata.
//! - Since anybody may join, what cannot be undone is kept for the creator: deleting the channel
//!   and removing other members. A channel message is deleted (for everyone: there is one view)
//!   by its sender or the channel's creator.
//! - `GET /channels` lists the channels the user is a member of (the SDK's channels query is
//!   the user's list; its channels carry their `membership`).

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::conversations::{check_metadata, is_metadata_operation, patched_metadata};
use super::messages::PartInput;
use crate::config::LimitSettings;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::extract::patch_error;
use crate::patch::Patch;
use crate::store::{
    Channel, ChannelMember, ChannelMessage, CreateChannel, Deleted, DynStore, Joined, Left,
    Listing, NewChannel, NewChannelMessage, Page, Part, SendChannelMessage, Timestamp, Updated,
    UserChannel,
};

/// Longest channel name, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// Largest page of a member list (the SDK's `MaxPageSize` for members); also the default.
pub const MEMBER_PAGE_SIZE: u32 = 500;

/// What creating a channel takes: the `data` of the WebSocket `Channel.create` request, which
/// our `POST /channels` accepts as its body.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateInput {
    pub id: Option<Uuid>,
    pub name: String,
    /// `None` when absent or `null`.
    pub metadata: Option<Map<String, Value>>,
    /// User ids (Identity ids are resolved), as given.
    pub members: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct CreateData {
    id: Option<String>,
    name: Option<String>,
    metadata: Option<Map<String, Value>>,
    members: Option<Vec<String>>,
}

impl CreateInput {
    /// Reads `{id, name, metadata, members}`: `id` a bare UUID or `layer:///channels/<uuid>`,
    /// `members` user ids or Identity ids.
    pub fn from_data(data: Value) -> ApiResult<Self> {
        let data: CreateData = serde_path_to_error::deserialize(data).map_err(|e| {
            ApiError::invalid_request(format!("Invalid channel at {}: {}", e.path(), e.inner()))
        })?;
        let name = data
            .name
            .ok_or_else(|| ApiError::missing_property("name"))?;
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::invalid_property(
                "name",
                format!("A channel name is 1 to {MAX_NAME_CHARS} characters, not all blank."),
            ));
        }
        let id = data
            .id
            .as_deref()
            .map(|id| super::object_id("id", "channels", id))
            .transpose()?;
        let members = data
            .members
            .unwrap_or_default()
            .iter()
            .map(|m| super::user_ref("members", m))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(CreateInput {
            id,
            name,
            metadata: data.metadata,
            members,
        })
    }
}

/// Why a create returned another channel as an error.
#[derive(Debug)]
pub enum CreateConflict {
    /// A live channel has that name (409 `conflict` carrying it: clients adopt it).
    NameTaken(UserChannel),
    /// The id is taken (409 `id_in_use`), with the channel when the creator may see it.
    IdInUse(Option<UserChannel>),
}

/// The creator first, then the members as given, without repeats; within the limit.
fn member_list(
    creator: &str,
    members: Vec<String>,
    limits: &LimitSettings,
) -> ApiResult<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let list: Vec<String> = std::iter::once(creator.to_owned())
        .chain(members)
        .filter(|u| seen.insert(u.clone()))
        .collect();
    if list.len() > limits.max_channel_members {
        return Err(too_many_members(limits));
    }
    Ok(list)
}

fn too_many_members(limits: &LimitSettings) -> ApiError {
    ApiError::invalid_property(
        "members",
        format!(
            "A channel may have at most {} members.",
            limits.max_channel_members
        ),
    )
}

/// Creates a channel (`Channel.create`, `POST /channels`); the creator is always a member.
pub async fn create(
    store: &DynStore,
    limits: &LimitSettings,
    app_id: Uuid,
    creator: &str,
    input: CreateInput,
) -> ApiResult<Result<UserChannel, CreateConflict>> {
    let members = member_list(creator, input.members, limits)?;
    if let Some(metadata) = &input.metadata {
        check_metadata(metadata, "metadata")?;
    }
    let new = NewChannel {
        app_id,
        id: input.id.unwrap_or_else(Uuid::new_v4),
        name: input.name,
        metadata: input.metadata.unwrap_or_default(),
        created_by: creator.to_owned(),
        created_at: Timestamp::now(),
        members,
    };
    Ok(match store.create_channel(&new).await? {
        CreateChannel::Created(channel) => Ok(UserChannel {
            membership: Some(ChannelMember {
                channel_id: channel.id,
                user_id: creator.to_owned(),
                joined_at: channel.created_at,
            }),
            channel,
        }),
        CreateChannel::NameTaken(channel) => {
            let membership = store.channel_member(app_id, channel.id, creator).await?;
            Err(CreateConflict::NameTaken(UserChannel {
                channel,
                membership,
            }))
        }
        CreateChannel::IdInUse(channel) => {
            let visible = user_channel(store, app_id, creator, channel.id).await.ok();
            Err(CreateConflict::IdInUse(visible))
        }
    })
}

pub fn not_found() -> ApiError {
    ApiError::not_found("The channel could not be found.")
}

fn member_not_found() -> ApiError {
    ApiError::not_found("The user is not a member of the channel.")
}

/// A channel id from a path: `<uuid>` or `layer:///channels/<uuid>`; anything else names no
/// channel.
pub fn channel_id(value: Option<&str>) -> ApiResult<Uuid> {
    super::object_id("channel_id", "channels", value.unwrap_or("")).map_err(|_| not_found())
}

/// A live channel, whoever asks (joining needs no membership).
async fn live_channel(store: &DynStore, app_id: Uuid, id: Uuid) -> ApiResult<Channel> {
    store
        .channel(app_id, id)
        .await?
        .filter(|c| c.deleted_at.is_none())
        .ok_or_else(not_found)
}

/// The channel as `user` sees it; 404 unless it is live and they are a member.
pub async fn user_channel(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
) -> ApiResult<UserChannel> {
    let membership = store
        .channel_member(app_id, id, user)
        .await?
        .ok_or_else(not_found)?;
    let channel = live_channel(store, app_id, id).await?;
    Ok(UserChannel {
        channel,
        membership: Some(membership),
    })
}

/// The channels the user is a member of, newest first.
pub async fn list(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    page: Page,
) -> ApiResult<Listing<UserChannel>> {
    Ok(store.user_channels(app_id, user, page).await?)
}

/// Applies a Layer Patch to the metadata (the only thing clients change; a channel's name is
/// fixed), atomically: on a copy, written only if nobody changed the channel meanwhile.
pub async fn patch(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    body: &[u8],
) -> ApiResult<()> {
    let patch = Patch::from_slice(body).map_err(patch_error)?;
    if let Some((index, op)) = patch
        .0
        .iter()
        .enumerate()
        .find(|(_, op)| !is_metadata_operation(op))
    {
        return Err(ApiError::invalid_property(
            &op.property,
            format!(
                "operation {index} ({} {:?}): channels accept set/delete on metadata only \
                 (a channel's name cannot be changed).",
                op.kind.as_str(),
                op.property
            ),
        ));
    }
    for _ in 0..8 {
        let channel = user_channel(store, app_id, user, id).await?.channel;
        let mut doc = serde_json::json!({ "metadata": channel.metadata });
        patch.apply(&mut doc, &|_| None).map_err(patch_error)?;
        let metadata = patched_metadata(&mut doc)?;
        match store
            .update_channel_metadata(app_id, id, channel.revision, &metadata)
            .await?
        {
            Updated::Done => return Ok(()),
            Updated::Stale => continue,
            Updated::NotFound => return Err(not_found()),
        }
    }
    Err(ApiError::service_unavailable(
        "The channel is changing too fast; try again.",
    ))
}

/// Deletes the channel for everyone (channels have no other mode); the creator's right.
pub async fn delete(store: &DynStore, app_id: Uuid, user: &str, id: Uuid) -> ApiResult<()> {
    let channel = user_channel(store, app_id, user, id).await?.channel;
    if channel.created_by != user {
        return Err(super::access_denied(
            "Only the creator of a channel may delete it.",
        ));
    }
    match store.delete_channel(app_id, id, Timestamp::now()).await? {
        Deleted::Done => Ok(()),
        Deleted::AlreadyDeleted | Deleted::NotFound => Err(not_found()),
    }
}

/// A member reference from a path or `from_id`: a user id, an Identity id, or a membership id
/// of this channel (`layer:///channels/<uuid>/members/<user>`).
pub fn member_ref(property: &str, channel_id: Uuid, value: &str) -> ApiResult<String> {
    let prefix = format!("layer:///channels/{channel_id}/members/");
    match value.strip_prefix(&prefix) {
        // Encoded as in Identity ids: decoded the same way.
        Some(user) => super::user_ref(property, &format!("layer:///identities/{user}")),
        None => super::user_ref(property, value),
    }
}

/// A page of the members, for members.
pub async fn members(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    after: Option<&str>,
    limit: u32,
) -> ApiResult<Listing<ChannelMember>> {
    user_channel(store, app_id, user, id).await?;
    Ok(store.channel_members(app_id, id, after, limit).await?)
}

/// One membership, for members; 404 `not_found` when `member` is not one.
pub async fn member(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    member: &str,
) -> ApiResult<ChannelMember> {
    user_channel(store, app_id, user, id).await?;
    store
        .channel_member(app_id, id, member)
        .await?
        .ok_or_else(member_not_found)
}

/// Adds `member`: the user themselves joining (anyone may), or a member adding someone else.
/// Adding a member twice changes nothing.
pub async fn add_member(
    store: &DynStore,
    limits: &LimitSettings,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    member: &str,
) -> ApiResult<()> {
    if member == user {
        live_channel(store, app_id, id).await?;
    } else {
        user_channel(store, app_id, user, id).await?;
    }
    match store
        .add_channel_member(
            app_id,
            id,
            member,
            Timestamp::now(),
            limits.max_channel_members,
        )
        .await?
    {
        Joined::Added | Joined::AlreadyMember => Ok(()),
        Joined::Full => Err(too_many_members(limits)),
        Joined::NotFound => Err(not_found()),
    }
}

/// Removes `member`: the user themselves leaving, or the creator removing someone else.
pub async fn remove_member(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    member: &str,
) -> ApiResult<()> {
    let channel = user_channel(store, app_id, user, id).await?.channel;
    if member != user && channel.created_by != user {
        return Err(super::access_denied(
            "Only the creator of a channel may remove other members.",
        ));
    }
    match store.remove_channel_member(app_id, id, member).await? {
        Left::Removed => Ok(()),
        Left::NotMember => Err(member_not_found()),
        Left::NotFound => Err(not_found()),
    }
}

/// A message to send to a channel: parts validated like those of conversation messages
/// (`messages::parts`), ids chosen by the client kept.
#[derive(Debug, Clone, PartialEq)]
pub struct SendInput {
    pub id: Uuid,
    pub parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
struct SendData {
    id: Option<String>,
    parts: Option<Vec<PartInput>>,
}

impl SendInput {
    /// Reads `{id, parts}` (the `data` of `Message.create` for a channel, or the body of our
    /// `POST /channels/:id/messages`). Channels send no push notifications: a `notification`
    /// is ignored.
    pub fn from_data(data: Value, limits: &LimitSettings) -> ApiResult<Self> {
        let data: SendData = serde_path_to_error::deserialize(data).map_err(|e| {
            ApiError::invalid_request(format!("Invalid message at {}: {}", e.path(), e.inner()))
        })?;
        let id = match data.id.as_deref() {
            Some(id) => super::object_id("id", "messages", id)?,
            None => Uuid::new_v4(),
        };
        let parts = super::messages::parts(data.parts, id, limits, None)?;
        Ok(SendInput { id, parts })
    }
}

/// The 409 for a message id already taken by a message the caller does not get to see.
pub fn message_id_in_use() -> ApiError {
    ApiError::conflict(
        ErrorKind::ID_IN_USE,
        "The requested Message already exists.",
        Value::Null,
    )
}

/// Sends as a member; `Err(existing)` when the id is taken by a message of a channel the sender
/// is a member of (an idempotent retry), a 409 without the message when they are not.
pub async fn send(
    store: &DynStore,
    app_id: Uuid,
    sender: &str,
    channel_id: Uuid,
    input: SendInput,
) -> ApiResult<Result<ChannelMessage, ChannelMessage>> {
    if store.user_state(app_id, sender).await?.suspended {
        return Err(super::messages::suspended());
    }
    user_channel(store, app_id, sender, channel_id).await?;
    let mut parts = input.parts;
    let uploader = super::content::Uploader::User(sender);
    super::content::check_references(store, app_id, uploader, false, &mut parts).await?;
    let new = NewChannelMessage {
        app_id,
        id: input.id,
        channel_id,
        sender: sender.to_owned(),
        sent_at: Timestamp::now(),
        parts,
    };
    match store.send_channel_message(&new).await? {
        // The store marked the contents referenced in the transaction of the insert.
        SendChannelMessage::Sent(message) => Ok(Ok(message)),
        SendChannelMessage::IdInUse(existing) => {
            match user_channel(store, app_id, sender, existing.channel_id).await {
                Ok(_) => Ok(Err(existing)),
                Err(_) => Err(message_id_in_use()),
            }
        }
        SendChannelMessage::IdInUseByConversationMessage => Err(message_id_in_use()),
        SendChannelMessage::ChannelNotFound => Err(not_found()),
    }
}

/// A page of the channel's messages, newest first, for members.
pub async fn messages(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    page: Page,
) -> ApiResult<Listing<ChannelMessage>> {
    user_channel(store, app_id, user, id).await?;
    Ok(store.channel_messages(app_id, id, page).await?)
}

/// The channel message, if `user` is a member of its channel (`GET /messages/:id`).
pub async fn user_message(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
) -> ApiResult<Option<ChannelMessage>> {
    let Some(message) = store.channel_message(app_id, id).await? else {
        return Ok(None);
    };
    Ok(user_channel(store, app_id, user, message.channel_id)
        .await
        .ok()
        .map(|_| message))
}

/// Deletes a channel message for everyone: its sender's or the channel creator's right.
pub async fn delete_message(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    message: &ChannelMessage,
) -> ApiResult<()> {
    let channel = user_channel(store, app_id, user, message.channel_id)
        .await?
        .channel;
    if message.sender != user && channel.created_by != user {
        return Err(super::access_denied(
            "Only the sender or the channel's creator may delete a channel message.",
        ));
    }
    if store.delete_channel_message(app_id, message.id).await? {
        Ok(())
    } else {
        Err(super::messages::message_not_found())
    }
}
