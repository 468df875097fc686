//! Change-log events → the packet bodies of client-wire-protocol.md §4.5-4.6, rendered at
//! delivery for one socket: its API version and its user's perspective. A create carries the
//! object as a REST GET returns it for that user now (nothing when it is gone or no longer
//! visible); an update carries Layer-Patch ops (`patch` in 1.0, `update` from 2.0); a delete
//! carries the documented `data`.

use std::time::Instant;

use serde_json::{json, Value};
use uuid::Uuid;

use super::message_cache::Loaded;
use super::packet::PacketType;
use crate::error::ApiResult;
use crate::http::auth::Actor;
use crate::http::AppState;
use crate::render::{conversation_uri, message_uri, View};
use crate::store::{ConversationOp, DeliveryView, Event, Message, ReceiptStatus};
use crate::version::ApiVersion;

/// When and how a delivery task read a change from its user's log.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub at: Instant,
    /// Read for an `Event.replay`: what the change renders is read as the database holds it
    /// now, not shared with the live fan-out (whose snapshots may be up to a TTL older; the
    /// changes after them would converge, but a replay is rare and should not show them).
    pub replay: bool,
}

/// A dot inside one segment of a Layer-Patch property path (client-wire-protocol.md §7).
pub fn escape_segment(segment: &str) -> String {
    segment.replace('.', "\\.")
}

fn object(kind: &str, id: String, url: String) -> Value {
    json!({ "type": kind, "id": id, "url": url })
}

fn change(operation: &str, object: Value, data: Value) -> (PacketType, Value) {
    (
        PacketType::Change,
        json!({ "operation": operation, "object": object, "data": data }),
    )
}

fn update_operation(version: ApiVersion) -> &'static str {
    if version.has_identities() {
        "update"
    } else {
        "patch"
    }
}

/// The packets for `event` as the socket's user sees it (none when there is nothing to send).
/// `read`: when and how the delivery task read the change from the log.
///
/// A message create or delete is followed by a Conversation update refreshing the per-user
/// fields it changed (`last_message`, `unread_message_count`, `total_message_count`): they are
/// derived here, at delivery, from the conversation as the user sees it now, so the send path
/// writes no extra change rows for them.
///
/// A create costs no statement per recipient socket: whether the user sees the message, their
/// receipt of it, their counts and last message come from the node's `ViewCache` (one
/// statement for all members), and the message itself and the identities it mentions from its
/// `MessageCache` (loaded once for all sockets, or kept from the send on the sending node).
pub async fn render(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    event: &Event,
    read: Read,
) -> ApiResult<Vec<(PacketType, Value)>> {
    match event {
        Event::MessageCreated { message } => {
            message_created(state, actor, version, *message, read).await
        }
        Event::MessageDeleted { conversation, .. } => {
            let mut packets: Vec<_> = render_one(state, actor, version, event)
                .await?
                .into_iter()
                .collect();
            if let Some(conversation) = conversation {
                packets.extend(
                    conversation_counts(state, actor, version, *conversation, read.at).await?,
                );
            }
            Ok(packets)
        }
        Event::MessagePartsChanged {
            message,
            added,
            updated,
            removed,
        } => parts_changed(state, actor, version, *message, added, updated, removed).await,
        Event::ChannelCreated { .. }
        | Event::ChannelUpdated { .. }
        | Event::ChannelDeleted { .. }
        | Event::ChannelMemberAdded { .. }
        | Event::ChannelMemberRemoved { .. }
        | Event::ChannelMessageCreated { .. }
        | Event::ChannelMessageDeleted { .. } => channel_event(state, actor, version, event).await,
        _ => Ok(render_one(state, actor, version, event)
            .await?
            .into_iter()
            .collect()),
    }
}

/// A renderer for the actor with the identities a cached message mentions (2.0+ renders them).
fn message_view<'a>(
    state: &'a AppState,
    actor: &Actor,
    version: ApiVersion,
    loaded: &Loaded,
) -> View<'a> {
    let mut view = crate::api::bare_view(state, actor, version);
    if version.has_identities() {
        view.identities = loaded.identities.clone();
    }
    view
}

/// A cached message rendered for `user`, with their own receipt as it is now (the cached one is
/// shared by every recipient and may be older).
fn render_message(
    view: &View<'_>,
    message: &Message,
    user: &str,
    status: Option<ReceiptStatus>,
) -> Value {
    let cached = message.status_of(user);
    if cached == status {
        return view.message(message);
    }
    let mut mine = message.clone();
    match status {
        Some(status) => match mine.recipient_status.iter_mut().find(|(u, _)| u == user) {
            Some(entry) => entry.1 = status,
            None => mine.recipient_status.push((user.to_owned(), status)),
        },
        None => mine.recipient_status.retain(|(u, _)| u != user),
    }
    view.message(&mine)
}

/// Logs a read that delivery skips (as a failed visibility check, the change is not sent).
fn skipped<T>(result: crate::store::StoreResult<Option<T>>) -> Option<T> {
    result
        .inspect_err(|err| tracing::warn!(error = %err, "reading for delivery failed"))
        .ok()
        .flatten()
}

/// A Message create and the Conversation update that follows it, if the user sees the message.
async fn message_created(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    id: Uuid,
    read: Read,
) -> ApiResult<Vec<(PacketType, Value)>> {
    let Some(user) = actor.user_id() else {
        return Ok(Vec::new());
    };
    let (store, cache) = (&state.store, &state.realtime.messages);
    let app_id = actor.app_id;
    let Some(mut loaded) = skipped(cache.get(store, app_id, id, None).await) else {
        return Ok(Vec::new());
    };
    let conversation = loaded.message.conversation_id;
    let views = &state.realtime.views;
    let fresh = read.replay.then_some(read.at);
    let seen = views
        .get(store, app_id, conversation, id, user, fresh)
        .await;
    let Some(seen) = skipped(seen) else {
        return Ok(Vec::new());
    };
    if seen
        .message
        .is_some_and(|m| m.position != loaded.message.position)
    {
        // The id was deleted and sent again since the snapshot was taken.
        let fresh = Some(Instant::now());
        let Some(again) = skipped(cache.get(store, app_id, id, fresh).await) else {
            return Ok(Vec::new());
        };
        loaded = again;
    }
    if !seen.sees_message() || loaded.message.conversation_id != conversation {
        return Ok(Vec::new());
    }
    let status = seen.message.and_then(|m| m.receipt).map(|r| r.status);
    let view = message_view(state, actor, version, &loaded);
    let data = render_message(&view, &loaded.message, user, status);
    let last = match seen.last_message {
        Some((last, _)) if last == id => data.clone(),
        // A newer message: its own create follows in the user's log, so any snapshot will do.
        Some((last, status)) => match skipped(cache.get(store, app_id, last, None).await) {
            Some(last) => render_message(
                &message_view(state, actor, version, &last),
                &last.message,
                user,
                status,
            ),
            None => Value::Null,
        },
        None => Value::Null,
    };
    Ok(vec![
        change("create", message_object(&view, conversation, id), data),
        counts_update(&view, version, conversation, last, &seen),
    ])
}

/// A part change of a message, for 3.0 sockets (2.0 clients treat messages as immutable): a
/// Message `update` removing and adding `parts` (by id; an add carries the part as `value`, so
/// the XDK can create it) and setting `updated_at`; and per changed part a MessagePart `update`
/// of `mime_type`, `body` and `updated_at`, or, for a part with rich content or a base64 body
/// (which the XDK only rebuilds from a whole part), a MessagePart `create` carrying the part,
/// which refreshes the cached one. Nothing when the user no longer sees the message; parts gone
/// since are skipped (their removal follows). No MessagePart `delete`: the XDK has no handler
/// for it.
async fn parts_changed(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    message: Uuid,
    added: &[Uuid],
    updated: &[Uuid],
    removed: &[Uuid],
) -> ApiResult<Vec<(PacketType, Value)>> {
    let Some(user) = actor.user_id() else {
        return Ok(Vec::new());
    };
    if version < ApiVersion::V3_0 {
        return Ok(Vec::new());
    }
    let Ok((message, _)) =
        crate::service::messages::user_message(&state.store, actor.app_id, user, message).await
    else {
        return Ok(Vec::new());
    };
    let view = crate::api::bare_view(state, actor, version);
    let url = view.message_url(message.conversation_id, message.id);
    let part_of = |id: &Uuid| {
        message
            .parts
            .iter()
            .enumerate()
            .find(|(_, p)| p.id == *id)
            .map(|(i, p)| (p, view.part(message.id, &url, i, p)))
    };
    let part_uri = |id: &Uuid| format!("{}/parts/{id}", message_uri(message.id));
    let mut packets = Vec::new();
    let mut ops: Vec<Value> = removed
        .iter()
        .map(|id| json!({ "operation": "remove", "property": "parts", "id": part_uri(id) }))
        .collect();
    ops.extend(added.iter().filter_map(|id| {
        let (_, value) = part_of(id)?;
        Some(json!({ "operation": "add", "property": "parts", "id": value["id"], "value": value }))
    }));
    if !ops.is_empty() || !updated.is_empty() {
        ops.push(json!({ "operation": "set", "property": "updated_at",
                         "value": message.updated_at.map(crate::store::Timestamp::to_iso) }));
        packets.push(change(
            update_operation(version),
            message_object(&view, message.conversation_id, message.id),
            Value::Array(ops),
        ));
    }
    for id in updated {
        let Some((part, value)) = part_of(id) else {
            continue;
        };
        let object = object(
            "MessagePart",
            part_uri(id),
            value["url"].as_str().unwrap_or_default().to_owned(),
        );
        if part.content.is_some() || part.encoding.is_some() {
            packets.push(change("create", object, value));
        } else {
            packets.push(change(
                update_operation(version),
                object,
                json!([
                    { "operation": "set", "property": "mime_type", "value": value["mime_type"] },
                    { "operation": "set", "property": "body", "value": value["body"] },
                    { "operation": "set", "property": "updated_at", "value": value["updated_at"] },
                ]),
            ));
        }
    }
    Ok(packets)
}

/// Channel events (2.0+; channels do not exist in 1.0). Creates carry the object as the user
/// sees it now (nothing once they no longer do); a member who joins gets the Channel before its
/// Membership, one who leaves the Channel `delete` (`my_devices`: gone for them only) after it.
async fn channel_event(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    event: &Event,
) -> ApiResult<Vec<(PacketType, Value)>> {
    let Some(user) = actor.user_id() else {
        return Ok(Vec::new());
    };
    if !version.has_identities() {
        return Ok(Vec::new());
    }
    let store = &state.store;
    let app_id = actor.app_id;
    let view = crate::api::bare_view(state, actor, version);
    let view = &view;
    let channel_create = |channel: Uuid| async move {
        let Ok(seen) = crate::service::channels::user_channel(store, app_id, user, channel).await
        else {
            return Ok::<_, crate::error::ApiError>(None);
        };
        let data = crate::api::channels::render_channel(state, actor, version, &seen).await?;
        Ok(Some(change("create", channel_object(view, channel), data)))
    };
    let mut packets = Vec::new();
    match event {
        Event::ChannelCreated { channel } => packets.extend(channel_create(*channel).await?),
        Event::ChannelUpdated { channel, ops } => {
            let ops: Vec<Value> = ops.iter().filter_map(metadata_op).collect();
            if !ops.is_empty() {
                packets.push(change(
                    update_operation(version),
                    channel_object(view, *channel),
                    Value::Array(ops),
                ));
            }
        }
        Event::ChannelDeleted { channel } => packets.push(change(
            "delete",
            channel_object(view, *channel),
            json!({ "mode": "all_participants", "from_position": null }),
        )),
        Event::ChannelMemberAdded {
            channel,
            user: member,
        } => {
            if member == user {
                packets.extend(channel_create(*channel).await?);
            }
            if let Some(membership) = store.channel_member(app_id, *channel, member).await? {
                let view =
                    crate::api::view_for(state, actor, version, vec![member.clone()]).await?;
                packets.push(change(
                    "create",
                    membership_object(&view, *channel, member),
                    view.channel_member(&membership),
                ));
            }
        }
        Event::ChannelMemberRemoved {
            channel,
            user: member,
        } => {
            packets.push(change(
                "delete",
                membership_object(view, *channel, member),
                json!({}),
            ));
            if member == user {
                packets.push(change(
                    "delete",
                    channel_object(view, *channel),
                    json!({ "mode": "my_devices", "from_position": null }),
                ));
            }
        }
        Event::ChannelMessageCreated { message } => {
            if let Some(message) =
                crate::service::channels::user_message(store, app_id, user, *message).await?
            {
                let data =
                    crate::api::channels::render_message(state, actor, version, &message).await?;
                packets.push(change(
                    "create",
                    message_object(view, Uuid::nil(), message.id),
                    data,
                ));
            }
        }
        Event::ChannelMessageDeleted { message, .. } => packets.push(change(
            "delete",
            message_object(view, Uuid::nil(), *message),
            json!({ "mode": "all_participants" }),
        )),
        _ => {}
    }
    Ok(packets)
}

fn channel_object(view: &View<'_>, id: Uuid) -> Value {
    object(
        "Channel",
        crate::render::channel_uri(id),
        view.channel_url(id),
    )
}

fn membership_object(view: &View<'_>, channel: Uuid, user: &str) -> Value {
    let user = crate::ids::encode_component(user);
    object(
        "Membership",
        format!("{}/members/{user}", crate::render::channel_uri(channel)),
        format!("{}/members/{user}", view.channel_url(channel)),
    )
}

/// A metadata change as a Layer-Patch op (`None` for other kinds of change).
fn metadata_op(op: &ConversationOp) -> Option<Value> {
    match op {
        ConversationOp::MetadataSet { key, value } => Some(
            json!({ "operation": "set", "property": format!("metadata.{}", escape_segment(key)),
                    "value": value }),
        ),
        ConversationOp::MetadataDeleted { key } => Some(
            json!({ "operation": "delete", "property": format!("metadata.{}", escape_segment(key)) }),
        ),
        _ => None,
    }
}

/// The conversation as the socket's user sees it now; `None` when they no longer do.
async fn seen_conversation(
    state: &AppState,
    actor: &Actor,
    conversation: Uuid,
) -> Option<crate::store::UserConversation> {
    let user = actor.user_id()?;
    crate::service::conversations::user_conversation(&state.store, actor.app_id, user, conversation)
        .await
        .ok()
}

/// The Conversation update setting the per-user fields a message delete changes.
async fn conversation_counts(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    conversation: Uuid,
    read_at: Instant,
) -> ApiResult<Option<(PacketType, Value)>> {
    let Some(user) = actor.user_id() else {
        return Ok(None);
    };
    let (store, cache) = (&state.store, &state.realtime.messages);
    let app_id = actor.app_id;
    let Some(seen) = skipped(store.delivery_view(app_id, user, conversation, None).await) else {
        return Ok(None);
    };
    if !seen.sees_conversation() {
        return Ok(None);
    }
    let view = crate::api::bare_view(state, actor, version);
    let last = match seen.last_message {
        // Possibly an older message whose changes this socket delivered already: a snapshot
        // taken after the change was read includes them.
        Some((last, status)) => {
            match skipped(cache.get(store, app_id, last, Some(read_at)).await) {
                Some(last) => render_message(
                    &message_view(state, actor, version, &last),
                    &last.message,
                    user,
                    status,
                ),
                None => Value::Null,
            }
        }
        None => Value::Null,
    };
    Ok(Some(counts_update(
        &view,
        version,
        conversation,
        last,
        &seen,
    )))
}

/// The Conversation update of `last_message` (rendered) and the user's counts.
fn counts_update(
    view: &View<'_>,
    version: ApiVersion,
    conversation: Uuid,
    last: Value,
    seen: &DeliveryView,
) -> (PacketType, Value) {
    let last_message = if last.is_null() {
        json!({ "operation": "set", "property": "last_message", "value": null })
    } else {
        json!({ "operation": "set", "property": "last_message", "id": last["id"], "value": last })
    };
    change(
        update_operation(version),
        conversation_object(view, conversation),
        json!([
            last_message,
            { "operation": "set", "property": "unread_message_count",
              "value": seen.unread_message_count },
            { "operation": "set", "property": "total_message_count",
              "value": seen.total_message_count },
        ]),
    )
}

/// The main packet for `event`; `None` when there is nothing to send.
async fn render_one(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    event: &Event,
) -> ApiResult<Option<(PacketType, Value)>> {
    let Some(user) = actor.user_id() else {
        return Ok(None);
    };
    let store = &state.store;
    let app_id = actor.app_id;
    let bare = || crate::api::bare_view(state, actor, version);
    Ok(match event {
        Event::ConversationCreated { conversation } => {
            let Some(view) = seen_conversation(state, actor, *conversation).await else {
                return Ok(None);
            };
            if view.conversation.deleted_at.is_some() {
                return Ok(None);
            }
            let users = crate::api::conversations::users_of_view(&view);
            let renderer = crate::api::view_for(state, actor, version, users).await?;
            let data = renderer.user_conversation(&view);
            Some(change(
                "create",
                conversation_object(&renderer, *conversation),
                data,
            ))
        }
        Event::ConversationUpdated { conversation, ops } => {
            let users = ops
                .iter()
                .filter_map(|op| match op {
                    ConversationOp::ParticipantAdded { user } => Some(user.clone()),
                    _ => None,
                })
                .collect();
            let renderer = crate::api::view_for(state, actor, version, users).await?;
            let mut patch = Vec::with_capacity(ops.len());
            for op in ops {
                if let Some(op) =
                    conversation_op(state, actor, &renderer, *conversation, op).await?
                {
                    patch.push(op);
                }
            }
            if patch.is_empty() {
                return Ok(None);
            }
            Some(change(
                update_operation(version),
                conversation_object(&renderer, *conversation),
                Value::Array(patch),
            ))
        }
        Event::ConversationDeleted {
            conversation,
            mode,
            from_position,
        } => Some(change(
            "delete",
            conversation_object(&bare(), *conversation),
            json!({ "mode": mode, "from_position": from_position }),
        )),
        // Rendered with its conversation refresh (or on their own) by `render`.
        Event::MessageCreated { .. }
        | Event::MessagePartsChanged { .. }
        | Event::ChannelCreated { .. }
        | Event::ChannelUpdated { .. }
        | Event::ChannelDeleted { .. }
        | Event::ChannelMemberAdded { .. }
        | Event::ChannelMemberRemoved { .. }
        | Event::ChannelMessageCreated { .. }
        | Event::ChannelMessageDeleted { .. } => None,
        Event::MessageReceipt {
            message,
            user: reader,
            status,
        } => {
            let renderer = bare();
            let property = format!(
                "recipient_status.{}",
                escape_segment(&renderer.user_key(reader))
            );
            Some(change(
                update_operation(version),
                message_object(&renderer, Uuid::nil(), *message),
                json!([{ "operation": "set", "property": property, "value": status }]),
            ))
        }
        Event::MessageDeleted { message, mode, .. } => Some(change(
            "delete",
            message_object(&bare(), Uuid::nil(), *message),
            json!({ "mode": mode }),
        )),
        Event::AnnouncementCreated { announcement } => {
            let Some(item) = store.user_announcement(app_id, user, *announcement).await? else {
                return Ok(None);
            };
            let users = crate::api::announcements::users_of(&item.announcement);
            let renderer = crate::api::view_for(state, actor, version, users).await?;
            let data = renderer.user_announcement(&item);
            Some(change(
                "create",
                announcement_object(&renderer, *announcement),
                data,
            ))
        }
        Event::AnnouncementReceipt {
            announcement,
            status,
        } => {
            let renderer = bare();
            let property = format!(
                "recipient_status.{}",
                escape_segment(&renderer.user_key(user))
            );
            Some(change(
                update_operation(version),
                announcement_object(&renderer, *announcement),
                json!([{ "operation": "set", "property": property, "value": status }]),
            ))
        }
        Event::AnnouncementDeleted { announcement } => Some(change(
            "delete",
            announcement_object(&bare(), *announcement),
            json!({}),
        )),
        Event::IdentityFollowed { user: followed } => {
            if !version.has_identities() {
                return Ok(None);
            }
            let Some(identity) = store.identity(app_id, followed).await? else {
                return Ok(None);
            };
            let renderer = bare();
            Some(change(
                "create",
                identity_object(&renderer, followed),
                renderer.identity(&identity),
            ))
        }
        Event::IdentityUpdated {
            user: changed,
            fields,
        } => {
            if !version.has_identities() {
                return Ok(None);
            }
            let Some(identity) = store.identity(app_id, changed).await? else {
                return Ok(None);
            };
            let renderer = bare();
            let rendered = renderer.identity(&identity);
            let ops: Vec<Value> = fields
                .iter()
                .filter_map(|field| {
                    let value = rendered.get(field)?;
                    Some(json!({ "operation": "set", "property": field, "value": value }))
                })
                .collect();
            if ops.is_empty() {
                return Ok(None);
            }
            Some(change(
                update_operation(version),
                identity_object(&renderer, changed),
                Value::Array(ops),
            ))
        }
        Event::IdentityUnfollowed { user: followed }
        | Event::IdentityDeleted { user: followed }
            if version.has_identities() =>
        {
            Some(change(
                "delete",
                identity_object(&bare(), followed),
                Value::Null,
            ))
        }
        Event::IdentityUnfollowed { .. } | Event::IdentityDeleted { .. } => None,
        Event::MarkAllRead {
            conversation,
            position,
            user: reader,
        } => {
            let renderer =
                crate::api::view_for(state, actor, version, vec![reader.clone()]).await?;
            Some((
                PacketType::Operation,
                json!({
                    "method": "Conversation.mark_all_read",
                    "object": conversation_object(&renderer, *conversation),
                    "data": { "position": position, "identity": renderer.basic_identity(reader) },
                }),
            ))
        }
    })
}

fn conversation_object(view: &View<'_>, id: Uuid) -> Value {
    object(
        "Conversation",
        conversation_uri(id),
        view.conversation_url(id),
    )
}

fn announcement_object(view: &View<'_>, id: Uuid) -> Value {
    object(
        "Announcement",
        format!("layer:///announcements/{id}"),
        view.announcement_url(id),
    )
}

fn identity_object(view: &View<'_>, user: &str) -> Value {
    object(
        "Identity",
        crate::ids::identity_uri(user),
        view.identity_url(user),
    )
}

/// Client perspectives address messages as `/messages/:id`, without their conversation.
fn message_object(view: &View<'_>, conversation_id: Uuid, id: Uuid) -> Value {
    object(
        "Message",
        message_uri(id),
        view.message_url(conversation_id, id),
    )
}

/// One Layer-Patch op of a conversation update, in the socket's version.
async fn conversation_op(
    state: &AppState,
    actor: &Actor,
    view: &View<'_>,
    conversation: Uuid,
    op: &ConversationOp,
) -> ApiResult<Option<Value>> {
    let identities = view.version.has_identities();
    Ok(Some(match op {
        ConversationOp::ParticipantAdded { user } if identities => {
            let value = view.basic_identity(user);
            json!({ "operation": "add", "property": "participants", "id": value["id"], "value": value })
        }
        ConversationOp::ParticipantAdded { user } => {
            json!({ "operation": "add", "property": "participants", "value": user })
        }
        ConversationOp::ParticipantRemoved { user } if identities => {
            json!({ "operation": "remove", "property": "participants",
                    "id": crate::ids::identity_uri(user) })
        }
        ConversationOp::ParticipantRemoved { user } => {
            json!({ "operation": "remove", "property": "participants", "value": user })
        }
        ConversationOp::MetadataSet { key, value } => {
            json!({ "operation": "set", "property": format!("metadata.{}", escape_segment(key)),
                    "value": value })
        }
        ConversationOp::MetadataDeleted { key } => {
            json!({ "operation": "delete", "property": format!("metadata.{}", escape_segment(key)) })
        }
        ConversationOp::UnreadMessageCount => {
            let Some(user) = actor.user_id() else {
                return Ok(None);
            };
            let seen = state
                .store
                .delivery_view(actor.app_id, user, conversation, None)
                .await
                .ok()
                .flatten();
            let Some(current) = seen.filter(DeliveryView::sees_conversation) else {
                return Ok(None);
            };
            json!({ "operation": "set", "property": "unread_message_count",
                    "value": current.unread_message_count })
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_inside_a_segment_are_escaped() {
        assert_eq!(
            escape_segment("layer:///identities/fred.flinstone"),
            "layer:///identities/fred\\.flinstone"
        );
        assert_eq!(escape_segment("plain"), "plain");
    }
}
