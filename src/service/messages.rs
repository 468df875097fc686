//! Messages, their parts and receipts, and announcements.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::config::LimitSettings;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::{
    Announcement, DynStore, Identity, Membership, Message, NewMessage, Part, PartChange,
    ReceiptStatus, SendMessage, Sender, Timestamp,
};

/// A message part as sent on the wire (any version).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PartInput {
    pub id: Option<String>,
    pub mime_type: Option<String>,
    pub body: Option<String>,
    pub encoding: Option<String>,
    pub content: Option<Value>,
}

const MAX_MIME_TYPE_CHARS: usize = 1024;

/// Validates one part: a MIME type, and either an inline body (at most the limit once decoded)
/// or a rich-content reference. `index` names the part in errors.
pub fn part(
    input: PartInput,
    message_id: Uuid,
    index: usize,
    limits: &LimitSettings,
    now: Option<Timestamp>,
) -> ApiResult<Part> {
    let property = format!("parts[{index}]");
    let invalid = |what: &str| ApiError::invalid_property(&property, format!("{property}: {what}"));
    let mime_type = input
        .mime_type
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::missing_property(&format!("{property}.mime_type")))?;
    if mime_type.chars().count() > MAX_MIME_TYPE_CHARS {
        return Err(invalid("the mime_type is too long."));
    }
    let id = match input.id.as_deref() {
        None | Some("") => Uuid::new_v4(),
        Some(id) => part_id(id, message_id).ok_or_else(|| {
            invalid("a part id is a UUID or layer:///messages/<message uuid>/parts/<uuid>.")
        })?,
    };
    let encoding = match input.encoding.as_deref() {
        None | Some("") => None,
        Some("base64") => Some("base64".to_owned()),
        Some(_) => return Err(invalid("the only encoding is \"base64\".")),
    };
    match (&input.body, &input.content) {
        (Some(_), Some(Value::Object(_))) => {
            return Err(invalid("a part has a body or a content, not both."))
        }
        (None, None) => return Err(ApiError::missing_property(&format!("{property}.body"))),
        (None, Some(Value::Object(content))) => {
            let content_id = content.get("id").and_then(Value::as_str).unwrap_or("");
            if super::object_id("content.id", "content", content_id).is_err() {
                return Err(invalid("content.id must be a layer:///content/<uuid> id."));
            }
        }
        (None, Some(_)) => return Err(invalid("content must be an object.")),
        (Some(body), _) => {
            let size = match encoding {
                Some(_) => base64::engine::general_purpose::STANDARD
                    .decode(body.trim())
                    .map_err(|_| invalid("the body is not valid base64."))?
                    .len(),
                None => body.len(),
            };
            if size > limits.max_inline_part_bytes {
                return Err(invalid(&format!(
                    "the body is {size} bytes; inline bodies may have at most {} bytes \
                     (send larger content as rich content).",
                    limits.max_inline_part_bytes
                )));
            }
        }
    }
    Ok(Part {
        id,
        mime_type,
        body: input.body,
        encoding,
        content: input.content.filter(Value::is_object),
        updated_at: now,
    })
}

/// A part id: `layer:///messages/<message>/parts/<uuid>` (of this message) or a bare UUID.
fn part_id(value: &str, message_id: Uuid) -> Option<Uuid> {
    let bare = match value.strip_prefix("layer:///messages/") {
        Some(rest) => {
            let (message, part) = rest.split_once("/parts/")?;
            (Uuid::try_parse(message).ok()? == message_id).then_some(part)?
        }
        None => value,
    };
    Uuid::try_parse(bare).ok()
}

/// All parts of a message; at least one, ids unique.
pub fn parts(
    inputs: Option<Vec<PartInput>>,
    message_id: Uuid,
    limits: &LimitSettings,
    now: Option<Timestamp>,
) -> ApiResult<Vec<Part>> {
    let inputs = inputs
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::missing_property("parts"))?;
    let parts = inputs
        .into_iter()
        .enumerate()
        .map(|(i, p)| part(p, message_id, i, limits, now))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut ids = std::collections::HashSet::new();
    if !parts.iter().all(|p| ids.insert(p.id)) {
        return Err(ApiError::invalid_property(
            "parts",
            "Part ids must be unique within a message.",
        ));
    }
    Ok(parts)
}

pub struct SendInput {
    pub id: Option<Uuid>,
    pub sender: Sender,
    pub parts: Vec<Part>,
    pub notification: Option<Value>,
}

pub fn suspended() -> ApiError {
    ApiError::new(ErrorKind::USER_SUSPENDED, "The user is suspended.")
}

/// Sends into a conversation. With `as_participant`, the sender must be one of its
/// participants (Client API and proxy); the Platform API may send as anyone, bots included.
/// The sender's suspension and participation are checked in the send's own transaction.
/// `Ok(Ok((message, identities)))`: sent, with the identities of its participants (see
/// `SendMessage::Sent`); `Ok(Err(existing))`: the id is taken.
pub async fn send(
    store: &DynStore,
    app_id: Uuid,
    conversation_id: Uuid,
    as_participant: bool,
    input: SendInput,
) -> ApiResult<Result<(Message, Vec<Identity>), Message>> {
    let mut parts = input.parts;
    let uploader = match &input.sender {
        Sender::User(user) => super::content::Uploader::User(user),
        Sender::Name(_) => super::content::Uploader::App,
    };
    super::content::check_references(store, app_id, uploader, !as_participant, &mut parts).await?;
    let new = NewMessage {
        app_id,
        id: input.id.unwrap_or_else(Uuid::new_v4),
        conversation_id,
        as_participant: as_participant && matches!(input.sender, Sender::User(_)),
        sender: input.sender,
        sent_at: Timestamp::now(),
        notification: input.notification,
        parts,
    };
    match store.send_message(&new).await? {
        // The store marked the contents referenced in the transaction of the insert.
        SendMessage::Sent {
            message,
            identities,
        } => Ok(Ok((message, identities))),
        SendMessage::IdInUse(existing) => Ok(Err(existing)),
        SendMessage::IdInUseByChannelMessage => Err(super::channels::message_id_in_use()),
        SendMessage::ConversationNotFound | SendMessage::NotVisible => {
            Err(super::conversations::not_found())
        }
        SendMessage::ConversationDeleted => Err(super::conversations::gone()),
        SendMessage::SenderSuspended => Err(suspended()),
        SendMessage::NotParticipant => Err(super::access_denied(
            "You are no longer a participant in the specified Conversation.",
        )),
    }
}

pub fn message_not_found() -> ApiError {
    ApiError::not_found("The message could not be found.")
}

/// A message id from a path; a malformed one names no message (404; the node client sends the
/// literal `null` for ids it could not parse).
pub fn message_id(value: Option<&str>) -> ApiResult<Uuid> {
    let value = value.unwrap_or("");
    let bare = value.rsplit('/').next().unwrap_or(value);
    Uuid::try_parse(bare).map_err(|_| message_not_found())
}

/// The message and the user's membership of its conversation, if the user may see it.
pub async fn user_message(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
) -> ApiResult<(Message, Membership)> {
    let message = store
        .message(app_id, id)
        .await?
        .ok_or_else(message_not_found)?;
    let membership = store
        .visible_membership(app_id, user, message.conversation_id)
        .await?
        .ok_or_else(message_not_found)?;
    if !membership.sees(message.position) || store.message_hidden_for(app_id, id, user).await? {
        return Err(message_not_found());
    }
    Ok((message, membership))
}

/// A message of this conversation (system view).
pub async fn conversation_message(
    store: &DynStore,
    app_id: Uuid,
    conversation_id: Uuid,
    id: Uuid,
) -> ApiResult<Message> {
    super::conversations::system_conversation(store, app_id, conversation_id).await?;
    store
        .message(app_id, id)
        .await?
        .filter(|m| m.conversation_id == conversation_id)
        .ok_or_else(message_not_found)
}

/// `read`, `delivery` (or `delivered`, defensively).
pub fn receipt_status(value: Option<&str>) -> ApiResult<ReceiptStatus> {
    match value {
        Some("read") => Ok(ReceiptStatus::Read),
        Some("delivery" | "delivered") => Ok(ReceiptStatus::Delivered),
        Some(_) => Err(ApiError::invalid_property(
            "type",
            "A receipt type is \"read\" or \"delivery\".",
        )),
        None => Err(ApiError::missing_property("type")),
    }
}

/// Records a receipt. Read cannot be undone; a delivery receipt after read changes nothing;
/// users added after the message was sent have nothing to acknowledge.
pub async fn receipt(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
    status: ReceiptStatus,
) -> ApiResult<()> {
    user_message(store, app_id, user, id).await?;
    store
        .set_receipt(app_id, id, user, status, Timestamp::now())
        .await?;
    Ok(())
}

/// Who may reference which content in the parts of `message` added or changed later: the
/// content its sender could send (the app's own only when the app itself edits).
fn part_uploader(message: &Message) -> super::content::Uploader<'_> {
    match message.sender.user_id() {
        Some(user) => super::content::Uploader::User(user),
        None => super::content::Uploader::App,
    }
}

/// Checks the content references of parts about to be added to or changed in `message` (see
/// `content::check_references`); `single` names the property `content` instead of
/// `parts[i].content`. The store marks them referenced with the change.
pub async fn check_part_references(
    store: &DynStore,
    app_id: Uuid,
    message: &Message,
    by_app: bool,
    parts: &mut [Part],
    single: bool,
) -> ApiResult<()> {
    let uploader = part_uploader(message);
    if single {
        for part in parts {
            super::content::check_reference(store, app_id, uploader, by_app, part, "content")
                .await?;
        }
        Ok(())
    } else {
        super::content::check_references(store, app_id, uploader, by_app, parts).await
    }
}

pub fn part_change(change: PartChange) -> ApiResult<()> {
    match change {
        PartChange::Done => Ok(()),
        PartChange::MessageNotFound => Err(message_not_found()),
        PartChange::PartNotFound => {
            Err(ApiError::not_found("The message part could not be found."))
        }
        PartChange::IdInUse => Err(ApiError::new(
            ErrorKind::ID_IN_USE,
            "The requested MessagePart already exists.",
        )),
    }
}

pub struct AnnouncementInput {
    pub sender: Sender,
    pub recipients: Vec<String>,
    pub parts: Vec<Part>,
    pub notification: Option<Value>,
}

pub async fn announce(
    store: &DynStore,
    app_id: Uuid,
    input: AnnouncementInput,
) -> ApiResult<Announcement> {
    let mut seen = std::collections::HashSet::new();
    let recipients: Vec<String> = input
        .recipients
        .into_iter()
        .filter(|r| seen.insert(r.clone()))
        .collect();
    if recipients.is_empty() {
        return Err(ApiError::missing_property("recipients"));
    }
    let mut parts = input.parts;
    let uploader = match &input.sender {
        Sender::User(user) => super::content::Uploader::User(user),
        Sender::Name(_) => super::content::Uploader::App,
    };
    super::content::check_references(store, app_id, uploader, true, &mut parts).await?;
    let announcement = Announcement {
        app_id,
        id: Uuid::new_v4(),
        sender: input.sender,
        sent_at: Timestamp::now(),
        notification: input.notification,
        parts,
        recipients,
    };
    if !store.create_announcement(&announcement).await? {
        return Err(ApiError::internal("announcement id collision"));
    }
    // (the store marked the contents referenced in the transaction of the insert)
    Ok(announcement)
}
