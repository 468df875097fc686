//! Rendering of domain records into Layer's JSON, per API version and perspective: the one place
//! where wire versions differ in output (handlers never branch on versions themselves).
//!
//! A `View` fixes who looks (the system, a user through the Client API, or a user through the
//! Platform API proxy), which decides URLs and the per-user fields, and the API version, which
//! decides participant/sender shapes, part ids and `recipient_status` keys.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::http::Urls;
use crate::ids;
use crate::store::{
    Announcement, Badge, ChannelMember, ChannelMessage, Conversation, Identity, Message, Part,
    Sender, UserAnnouncement, UserChannel, UserConversation,
};
use crate::version::ApiVersion;

/// Who looks at the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Perspective {
    /// The Platform API's system view (`/apps/:app/conversations/...`).
    System,
    /// A user through the Client API (`/conversations/...`).
    Client { user_id: String },
    /// A user through the Platform API proxy (`/apps/:app/users/:user_id/...`).
    Proxy { user_id: String },
}

impl Perspective {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Perspective::System => None,
            Perspective::Client { user_id } | Perspective::Proxy { user_id } => Some(user_id),
        }
    }
}

pub struct View<'a> {
    pub version: ApiVersion,
    pub urls: &'a Urls,
    pub app_id: Uuid,
    pub perspective: Perspective,
    /// Identities of the users the rendered objects mention (for BasicIdentity objects).
    pub identities: HashMap<String, Identity>,
}

impl<'a> View<'a> {
    pub fn new(
        version: ApiVersion,
        urls: &'a Urls,
        app_id: Uuid,
        perspective: Perspective,
    ) -> Self {
        View {
            version,
            urls,
            app_id,
            perspective,
            identities: HashMap::new(),
        }
    }

    pub fn with_identities(mut self, identities: Vec<Identity>) -> Self {
        self.identities = identities
            .into_iter()
            .map(|i| (i.user_id.clone(), i))
            .collect();
        self
    }

    /// The URL prefix of the perspective's resources.
    fn prefix(&self) -> String {
        let base = self.urls.base();
        match &self.perspective {
            Perspective::System => format!("{base}/apps/{}", self.app_id),
            Perspective::Client { .. } => base.to_owned(),
            Perspective::Proxy { user_id } => format!(
                "{base}/apps/{}/users/{}",
                self.app_id,
                ids::encode_component(user_id)
            ),
        }
    }

    pub fn conversation_url(&self, id: Uuid) -> String {
        format!("{}/conversations/{id}", self.prefix())
    }

    /// A relative `Location` for a conversation (followed by clients on the same origin).
    pub fn conversation_location(&self, id: Uuid) -> String {
        let url = self.conversation_url(id);
        url.strip_prefix(self.urls.base())
            .map_or(url.clone(), str::to_owned)
    }

    pub fn message_url(&self, conversation_id: Uuid, id: Uuid) -> String {
        match self.perspective {
            Perspective::System => format!(
                "{}/conversations/{conversation_id}/messages/{id}",
                self.prefix()
            ),
            _ => format!("{}/messages/{id}", self.prefix()),
        }
    }

    pub fn identity_url(&self, user_id: &str) -> String {
        match self.perspective {
            Perspective::System => self.urls.platform_identity(self.app_id, user_id),
            _ => format!(
                "{}/identities/{}",
                self.prefix(),
                ids::encode_component(user_id)
            ),
        }
    }

    /// `{id, url, user_id, display_name, avatar_url}` (2.0+).
    pub fn basic_identity(&self, user_id: &str) -> Value {
        basic_identity_at(
            &self.identity_url(user_id),
            user_id,
            self.identities.get(user_id),
        )
    }

    /// A user reference: the user id (1.x) or a BasicIdentity (2.0+).
    pub fn user_ref(&self, user_id: &str) -> Value {
        if self.version.has_identities() {
            self.basic_identity(user_id)
        } else {
            Value::String(user_id.to_owned())
        }
    }

    /// The key of a user in `recipient_status`.
    pub fn user_key(&self, user_id: &str) -> String {
        if self.version.has_identities() {
            ids::identity_uri(user_id)
        } else {
            user_id.to_owned()
        }
    }

    /// A full Identity as the perspective sees it: its `url` is where this caller reads it, and
    /// users (Client API, proxy) also get `type`, the key the SDKs read (client-api.md §5.6).
    pub fn identity(&self, identity: &Identity) -> Value {
        let mut value = identity_at(
            &self.identity_url(&identity.user_id),
            self.version,
            identity,
        );
        let for_user = self.perspective.user_id().is_some() && self.version.has_identities();
        if let (Some(map), true) = (value.as_object_mut(), for_user) {
            map.insert("type".into(), identity.identity_type.clone().into());
        }
        value
    }

    /// The system view of a conversation.
    pub fn conversation(&self, conversation: &Conversation) -> Value {
        let url = self.conversation_url(conversation.id);
        json!({
            "id": conversation_uri(conversation.id),
            "messages_url": format!("{url}/messages"),
            "url": url,
            "created_at": conversation.created_at.to_iso(),
            "participants": conversation
                .participants
                .iter()
                .map(|u| self.user_ref(u))
                .collect::<Vec<_>>(),
            "distinct": conversation.is_distinct(),
            "metadata": conversation.metadata,
        })
    }

    /// A user's view: plus `last_message`, unread and total counts; `participants` is empty for
    /// users who are no longer participants.
    pub fn user_conversation(&self, view: &UserConversation) -> Value {
        let mut value = self.conversation(&view.conversation);
        let map = value.as_object_mut().expect("an object literal");
        if !view.membership.is_participant {
            map.insert("participants".into(), json!([]));
        }
        map.insert(
            "last_message".into(),
            view.last_message
                .as_ref()
                .map_or(Value::Null, |m| self.message(m)),
        );
        map.insert(
            "unread_message_count".into(),
            view.unread_message_count.into(),
        );
        map.insert(
            "total_message_count".into(),
            view.total_message_count.into(),
        );
        value
    }

    fn sender(&self, sender: &Sender) -> Value {
        match (sender, self.version.has_identities()) {
            (Sender::User(user), false) => json!({"user_id": user, "name": null}),
            (Sender::Name(name), false) => json!({"user_id": null, "name": name}),
            (Sender::User(user), true) => self.basic_identity(user),
            // A 1.x system sender seen through 2.0+: no identity to point at.
            (Sender::Name(name), true) => json!({
                "id": null, "url": null, "user_id": null, "display_name": name, "avatar_url": null,
            }),
        }
    }

    pub fn part(&self, message_id: Uuid, message_url: &str, index: usize, part: &Part) -> Value {
        if self.version >= ApiVersion::V3_0 {
            json!({
                "id": format!("layer:///messages/{message_id}/parts/{}", part.id),
                "url": format!("{message_url}/parts/{}", part.id),
                "message_url": message_url,
                "mime_type": part.mime_type,
                "body": part.body,
                "encoding": part.encoding,
                "content": self.content(message_url, part.content.as_ref()),
                "updated_at": part.updated_at.map(|t| t.to_iso()),
            })
        } else {
            json!({
                "id": format!("layer:///messages/{message_id}/parts/{index}"),
                "mime_type": part.mime_type,
                "body": part.body,
                "encoding": part.encoding,
                "content": self.content(message_url, part.content.as_ref()),
            })
        }
    }

    /// A part's rich content (client-api.md §5.4): a fresh signed `download_url`, its
    /// `expiration`, and the `refresh_url` of the perspective (the Platform API's is under the
    /// message's conversation).
    fn content(&self, message_url: &str, content: Option<&Value>) -> Value {
        let Some(content) = content else {
            return Value::Null;
        };
        let id = content.get("id").and_then(Value::as_str).unwrap_or("");
        let Some(uuid) = id
            .strip_prefix("layer:///content/")
            .and_then(|u| Uuid::try_parse(u).ok())
        else {
            return content.clone();
        };
        let refresh_url = match self.perspective {
            Perspective::System => match message_url.rsplit_once("/messages/") {
                Some((conversation_url, _)) => format!("{conversation_url}/content/{uuid}"),
                None => format!("{}/content/{uuid}", self.prefix()),
            },
            _ => format!("{}/content/{uuid}", self.prefix()),
        };
        let (download_url, expiration) = self.urls.content_download(self.app_id, uuid);
        json!({
            "id": id,
            "download_url": download_url,
            "expiration": expiration.to_iso(),
            "refresh_url": refresh_url,
            "size": content.get("size"),
        })
    }

    pub fn parts(&self, message: &Message) -> Vec<Value> {
        let url = self.message_url(message.conversation_id, message.id);
        self.parts_at(message.id, &url, &message.parts)
    }

    fn parts_at(&self, message_id: Uuid, message_url: &str, parts: &[Part]) -> Vec<Value> {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| self.part(message_id, message_url, i, p))
            .collect()
    }

    /// A message, with the per-user fields filled in for a user perspective.
    pub fn message(&self, message: &Message) -> Value {
        let url = self.message_url(message.conversation_id, message.id);
        let viewer = self.perspective.user_id();
        let status: Map<String, Value> = message
            .recipient_status
            .iter()
            .map(|(user, s)| (self.user_key(user), Value::from(s.as_str())))
            .collect();
        let is_unread = viewer.map(|me| {
            message.sender.user_id() != Some(me)
                && message
                    .status_of(me)
                    .is_some_and(|s| s < crate::store::ReceiptStatus::Read)
        });
        let conversation_url = self.conversation_url(message.conversation_id);
        json!({
            "id": message_uri(message.id),
            "url": url,
            "receipts_url": viewer.map(|_| format!("{url}/receipts")),
            "position": message.position,
            "conversation": {
                "id": conversation_uri(message.conversation_id),
                "url": conversation_url,
            },
            "parts": self.parts(message),
            "sent_at": message.sent_at.to_iso(),
            "received_at": viewer.map(|_| message.sent_at.to_iso()),
            "sender": self.sender(&message.sender),
            "is_unread": is_unread,
            "recipient_status": status,
            "notification": null,
            "reply_to": null,
            "updated_at": message.updated_at.map(|t| t.to_iso()),
        })
    }

    pub fn channel_url(&self, id: Uuid) -> String {
        format!("{}/channels/{id}", self.prefix())
    }

    /// `{id, url}`: how messages and memberships point at their channel.
    fn channel_ref(&self, id: Uuid) -> Value {
        json!({ "id": channel_uri(id), "url": self.channel_url(id) })
    }

    /// A channel (client-wire-protocol.md §5.8), with the viewer's membership or `null`.
    pub fn channel(&self, view: &UserChannel) -> Value {
        let channel = &view.channel;
        json!({
            "id": channel_uri(channel.id),
            "url": self.channel_url(channel.id),
            "created_at": channel.created_at.to_iso(),
            "name": channel.name,
            "metadata": channel.metadata,
            "membership": view.membership.as_ref().map(|m| self.channel_member(m)),
        })
    }

    /// A Membership (client-wire-protocol.md §5.9): `layer:///channels/<uuid>/members/<user>`,
    /// the user id encoded as in Identity ids. Layer's roles are undocumented: `role` is null.
    pub fn channel_member(&self, member: &ChannelMember) -> Value {
        let user = ids::encode_component(&member.user_id);
        json!({
            "id": format!("{}/members/{user}", channel_uri(member.channel_id)),
            "url": format!("{}/members/{user}", self.channel_url(member.channel_id)),
            "channel": self.channel_ref(member.channel_id),
            "identity": self.basic_identity(&member.user_id),
            "role": null,
            "joined_at": member.joined_at.to_iso(),
        })
    }

    /// A channel message: a message with `channel` instead of `conversation`, and none of the
    /// per-user fields (receipts, `is_unread`, `notification`) channels do not have.
    pub fn channel_message(&self, message: &ChannelMessage) -> Value {
        let url = format!("{}/messages/{}", self.prefix(), message.id);
        json!({
            "id": message_uri(message.id),
            "url": url,
            "position": message.position,
            "channel": self.channel_ref(message.channel_id),
            "parts": self.parts_at(message.id, &url, &message.parts),
            "sent_at": message.sent_at.to_iso(),
            "received_at": message.sent_at.to_iso(),
            "sender": self.basic_identity(&message.sender),
            "updated_at": null,
        })
    }

    pub fn announcement_url(&self, id: Uuid) -> String {
        format!("{}/announcements/{id}", self.prefix())
    }

    pub fn announcement(&self, announcement: &Announcement) -> Value {
        let url = self.announcement_url(announcement.id);
        let parts: Vec<Value> = announcement
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut part = self.part(announcement.id, &url, i, p);
                if let Some(id) = part.get_mut("id") {
                    *id = Value::String(format!(
                        "layer:///announcements/{}/parts/{}",
                        announcement.id,
                        if self.version >= ApiVersion::V3_0 {
                            p.id.to_string()
                        } else {
                            i.to_string()
                        }
                    ));
                }
                part
            })
            .collect();
        json!({
            "id": format!("layer:///announcements/{}", announcement.id),
            "url": url,
            "sent_at": announcement.sent_at.to_iso(),
            "recipients": announcement
                .recipients
                .iter()
                .map(|u| Value::String(self.user_key(u)))
                .collect::<Vec<_>>(),
            "sender": self.sender(&announcement.sender),
            "parts": parts,
        })
    }

    /// An announcement as its recipient sees it (Client API).
    pub fn user_announcement(&self, view: &UserAnnouncement) -> Value {
        let mut value = self.announcement(&view.announcement);
        let map = value.as_object_mut().expect("an object literal");
        let url = self.announcement_url(view.announcement.id);
        map.insert("receipts_url".into(), format!("{url}/receipts").into());
        map.insert(
            "is_unread".into(),
            (view.status < crate::store::ReceiptStatus::Read).into(),
        );
        map.insert("conversation".into(), Value::Null);
        if let Some(me) = self.perspective.user_id() {
            map.insert(
                "recipient_status".into(),
                json!({ self.user_key(me): view.status.as_str() }),
            );
        }
        value
    }
}

pub fn conversation_uri(id: Uuid) -> String {
    format!("layer:///conversations/{id}")
}

pub fn channel_uri(id: Uuid) -> String {
    format!("layer:///channels/{id}")
}

pub fn message_uri(id: Uuid) -> String {
    format!("layer:///messages/{id}")
}

/// A full Identity (server-api.md §3.2). Before 2.0 only the profile fields were returned, plus
/// `user_id`, which the Python client requires.
pub fn identity(urls: &Urls, version: ApiVersion, identity: &Identity) -> Value {
    identity_at(
        &urls.platform_identity(identity.app_id, &identity.user_id),
        version,
        identity,
    )
}

/// A full Identity whose `url` (2.0+) is `url`.
fn identity_at(url: &str, version: ApiVersion, identity: &Identity) -> Value {
    let mut value = json!({
        "user_id": identity.user_id,
        "display_name": identity.display_name,
        "avatar_url": identity.avatar_url,
        "first_name": identity.first_name,
        "last_name": identity.last_name,
        "phone_number": identity.phone_number,
        "email_address": identity.email_address,
        "public_key": identity.public_key,
        "metadata": identity.metadata.0,
    });
    if version.has_identities() {
        let map = value.as_object_mut().expect("an object literal");
        map.insert("id".into(), ids::identity_uri(&identity.user_id).into());
        map.insert("url".into(), url.into());
        map.insert(
            "identity_type".into(),
            identity.identity_type.clone().into(),
        );
    }
    value
}

/// A BasicIdentity (server-api.md §3.1) of any user: `display_name` and `avatar_url` come from
/// the user's Identity when there is one, and are null otherwise.
pub fn basic_identity(
    urls: &Urls,
    app_id: Uuid,
    user_id: &str,
    identity: Option<&Identity>,
) -> Value {
    basic_identity_at(&urls.platform_identity(app_id, user_id), user_id, identity)
}

/// A BasicIdentity whose `url` is `url` (it depends on who looks).
fn basic_identity_at(url: &str, user_id: &str, identity: Option<&Identity>) -> Value {
    json!({
        "id": ids::identity_uri(user_id),
        "url": url,
        "user_id": user_id,
        "display_name": identity.and_then(|i| i.display_name.as_deref()),
        "avatar_url": identity.and_then(|i| i.avatar_url.as_deref()),
    })
}

/// One entry of a block list: `{"user_id"}` before 2.0, a BasicIdentity (which keeps `user_id`,
/// the key clients read) since.
pub fn blocked_user(
    urls: &Urls,
    version: ApiVersion,
    app_id: Uuid,
    user_id: &str,
    identity: Option<&Identity>,
) -> Value {
    if version.has_identities() {
        basic_identity(urls, app_id, user_id, identity)
    } else {
        json!({ "user_id": user_id })
    }
}

/// The user resource (`GET /users/:user_id`): its id, full Identity (or null) and suspension.
pub fn user(
    urls: &Urls,
    version: ApiVersion,
    user_id: &str,
    identity: Option<&Identity>,
    suspended: bool,
) -> Value {
    json!({
        "id": user_id,
        "identity": identity.map(|i| self::identity(urls, version, i)),
        "suspended": suspended,
    })
}

/// A user's badge counts.
pub fn badge(badge: &Badge) -> Value {
    json!({
        "external_unread_count": badge.external_unread_count,
        "unread_conversation_count": badge.unread_conversation_count,
        "unread_message_count": badge.unread_message_count,
    })
}
