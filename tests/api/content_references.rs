//! Garbage collection keeps content that a part references, whichever way the part was written
//! (client-api.md §3.6): the Platform API's message send, the WebSocket `Message.create`, v3
//! part adds, updates and replacements, announcements and channel messages (the Client API's
//! REST send is in `content.rs`). Each write marks its references in its own transaction, so a
//! write that fails marks nothing and its content is collected like any unsent upload.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{json, uuid_of, TestServer};
use crate::content::{app_uploaded, bytes, content_part, uploaded, Fixture};
use layer_server::error::ApiError;
use layer_server::service::content::collect_garbage;
use layer_server::store::{Announcement, Part, Sender, StoreError, Timestamp};

/// A server on the local content store, with a conversation of alice and bob.
struct Setup {
    fixture: Fixture,
    alice: String,
    conversation: String,
}

async fn setup() -> Setup {
    let fixture = Fixture::local(&[]).await;
    let alice = fixture.server.session_for("alice").await;
    let conversation = fixture.server.conversation_of(&["alice", "bob"]).await;
    Setup {
        fixture,
        alice,
        conversation,
    }
}

impl Setup {
    fn server(&self) -> &TestServer {
        &self.fixture.server
    }

    /// Content alice uploaded (3000 bytes); its id.
    async fn alices(&self) -> String {
        uploaded(self.server(), &self.alice, "image/png", &bytes(3000)).await
    }

    /// Content the app uploaded for the conversation; its id.
    async fn apps(&self) -> String {
        app_uploaded(self.server(), &self.conversation, &bytes(3000)).await
    }

    /// A text message alice sends over REST; its UUID and its first part's UUID.
    async fn alice_sends_text(&self) -> (String, String) {
        let response = self
            .server()
            .as_session(
                &self.alice,
                Method::POST,
                &format!("/conversations/{}/messages", self.conversation),
            )
            .json(&json!({"parts": [{"mime_type": "text/plain", "body": "one"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let message = json(response).await;
        (
            uuid_of(message["id"].as_str().unwrap()),
            uuid_of(message["parts"][0]["id"].as_str().unwrap()),
        )
    }

    /// A Client API request as alice with a JSON body; the status and body.
    async fn alice(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .server()
            .as_session(&self.alice, method, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), json(response).await)
    }

    /// Runs garbage collection as if `unreferenced_ttl_secs` had passed since every upload:
    /// the `kept` contents keep their record and bytes, the `collected` lose both.
    async fn collect(&self, kept: &[&str], collected: &[&str]) {
        let server = self.server();
        let ttl = self.fixture.settings().content.unreferenced_ttl_secs;
        let later = Timestamp::now().plus_secs(ttl + 1);
        let deleted = collect_garbage(&server.store, &self.fixture.storage(), later, ttl)
            .await
            .unwrap();
        assert_eq!(deleted, collected.len() as u64, "contents collected");
        for (ids, is_kept) in [(kept, true), (collected, false)] {
            for id in ids {
                let record = server
                    .store
                    .content(server.app_id, uuid_of(id).parse().unwrap())
                    .await
                    .unwrap();
                assert_eq!(record.is_some(), is_kept, "record of {id}");
                let object = self.fixture.object(id).await;
                assert_eq!(object, is_kept.then(|| bytes(3000)), "bytes of {id}");
            }
        }
    }
}

#[tokio::test]
async fn platform_api_message_keeps_its_content() {
    let s = setup().await;
    let (sent, unsent) = (s.apps().await, s.apps().await);
    let response = s
        .server()
        .post_message(
            &s.conversation,
            json!({"sender": {"name": "System"}, "parts": [content_part(&sent)]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    s.collect(&[&sent], &[&unsent]).await;
}

#[tokio::test]
async fn websocket_message_create_keeps_its_content() {
    let s = setup().await;
    let (sent, unsent) = (s.alices().await, s.alices().await);
    let mut ws = crate::websocket::open(s.server(), &s.alice, "layer-3.0").await;
    let conversation = format!("layer:///conversations/{}", s.conversation);
    let message = ws
        .ok(
            "Message.create",
            Some(&conversation),
            json!({"parts": [content_part(&sent)]}),
        )
        .await;
    assert_eq!(message["parts"][0]["content"]["id"], sent.as_str());
    s.collect(&[&sent], &[&unsent]).await;
}

#[tokio::test]
async fn added_part_keeps_its_content_and_a_refused_add_marks_nothing() {
    let s = setup().await;
    let (added, refused, unsent) = (s.alices().await, s.alices().await, s.alices().await);
    let (message, part) = s.alice_sends_text().await;
    let path = format!("/messages/{message}/parts");
    let (status, body) = s.alice(Method::POST, &path, content_part(&added)).await;
    assert_eq!(status, 201, "{body}");
    // A part id already in use: 409, and the content stays unreferenced.
    let mut taken = content_part(&refused);
    taken["id"] = json!(format!("layer:///messages/{message}/parts/{part}"));
    let (status, body) = s.alice(Method::POST, &path, taken).await;
    assert_eq!((status, body["id"].as_str()), (409, Some("id_in_use")));
    s.collect(&[&added], &[&refused, &unsent]).await;
}

#[tokio::test]
async fn updated_part_keeps_its_content_and_a_refused_update_marks_nothing() {
    let s = setup().await;
    let (updated, refused, unsent) = (s.alices().await, s.alices().await, s.alices().await);
    let (message, part) = s.alice_sends_text().await;
    let path = format!("/messages/{message}/parts/{part}");
    let (status, body) = s.alice(Method::PUT, &path, content_part(&updated)).await;
    assert_eq!(status, 200, "{body}");
    // A part the message does not have: 404, and the content stays unreferenced.
    let unknown = format!("/messages/{message}/parts/{}", uuid::Uuid::new_v4());
    let (status, body) = s.alice(Method::PUT, &unknown, content_part(&refused)).await;
    assert_eq!((status, body["id"].as_str()), (404, Some("not_found")));
    s.collect(&[&updated], &[&refused, &unsent]).await;
}

#[tokio::test]
async fn replaced_parts_keep_their_content() {
    let s = setup().await;
    let (first, second, unsent) = (s.alices().await, s.alices().await, s.alices().await);
    let (message, _) = s.alice_sends_text().await;
    let path = format!("/messages/{message}/parts");
    let (status, body) = s
        .alice(
            Method::PUT,
            &path,
            json!([content_part(&first), content_part(&second)]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.collect(&[&first, &second], &[&unsent]).await;
}

#[tokio::test]
async fn announcement_keeps_its_content() {
    let s = setup().await;
    let (sent, unsent) = (s.apps().await, s.apps().await);
    let response = s
        .server()
        .platform(Method::POST, "/announcements")
        .json(&json!({
            "recipients": ["bob"],
            "sender": {"name": "Admin"},
            "parts": [content_part(&sent)],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    s.collect(&[&sent], &[&unsent]).await;
}

#[tokio::test]
async fn channel_message_keeps_its_content() {
    let s = setup().await;
    let (sent, unsent) = (s.alices().await, s.alices().await);
    let (status, channel) = s
        .alice(
            Method::POST,
            "/channels",
            json!({"name": "pictures", "members": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let path = format!(
        "/channels/{}/messages",
        uuid_of(channel["id"].as_str().unwrap())
    );
    let (status, body) = s
        .alice(Method::POST, &path, json!({"parts": [content_part(&sent)]}))
        .await;
    assert_eq!(status, 201, "{body}");
    // Bob, a member, refreshes the content's download URL.
    let bob = s.server().session_for("bob").await;
    let response = s
        .server()
        .as_session(&bob, Method::GET, &format!("/content/{}", uuid_of(&sent)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    s.collect(&[&sent], &[&unsent]).await;
}

/// The race the transactions close: a content is checked (uploaded, the sender's), then
/// collected before the write commits. The store write (what the services make after their
/// check) fails on the foreign key with `ContentGone`, a 422 on the wire, and writes nothing.
#[tokio::test]
async fn content_collected_between_check_and_write_fails_the_write() {
    let s = setup().await;
    let server = s.server();
    let id = s.alices().await;
    let (message, _) = s.alice_sends_text().await;
    s.collect(&[], &[&id]).await;

    let part = Part {
        id: uuid::Uuid::new_v4(),
        mime_type: "image/png".into(),
        body: None,
        encoding: None,
        content: Some(json!({"id": id, "size": 3000})),
        updated_at: None,
    };
    let message: uuid::Uuid = message.parse().unwrap();
    let err = server
        .store
        .add_part(server.app_id, message, &part)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ContentGone), "{err}");
    let stored = server
        .store
        .message(server.app_id, message)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.parts.len(), 1, "nothing written");

    let announcement = Announcement {
        app_id: server.app_id,
        id: uuid::Uuid::new_v4(),
        sender: Sender::Name("Admin".into()),
        sent_at: Timestamp::now(),
        notification: None,
        parts: vec![part],
        recipients: vec!["bob".into()],
    };
    let err = server
        .store
        .create_announcement(&announcement)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ContentGone), "{err}");
    assert_eq!(
        server
            .store
            .announcement(server.app_id, announcement.id)
            .await
            .unwrap(),
        None,
        "nothing written"
    );

    let api = ApiError::from(err);
    assert_eq!(api.status(), 422);
    let body: Value = serde_json::from_slice(&api.body()).unwrap();
    assert_eq!(body["id"], "invalid_property");
    assert_eq!(body["data"]["property"], "parts");
}
