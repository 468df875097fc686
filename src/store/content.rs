//! Rich content records (client-api.md §3.6): who asked for an upload, what was uploaded, and
//! which messages reference it. The bytes themselves live in the object store (`crate::content`).

use async_trait::async_trait;
use uuid::Uuid;

use super::{StoreResult, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Content {
    pub app_id: Uuid,
    pub id: Uuid,
    /// The user who asked for the upload; `None`: the app (Platform API).
    pub owner_user_id: Option<String>,
    /// The conversation a Platform API upload was requested for.
    pub conversation_id: Option<Uuid>,
    pub content_type: String,
    /// `Upload-Content-Length` of the request.
    pub declared_size: i64,
    /// Bytes of the last complete upload; `None` while pending.
    pub size: Option<i64>,
    /// Hex SHA-256 of the uploaded bytes.
    pub sha256: Option<String>,
    pub created_at: Timestamp,
    pub uploaded_at: Option<Timestamp>,
}

/// The contents that parts reference (`content.id` = `layer:///content/<uuid>`).
pub fn referenced_ids(parts: &[super::Part]) -> Vec<Uuid> {
    parts
        .iter()
        .filter_map(|part| part.content.as_ref()?.get("id")?.as_str())
        .filter_map(|id| Uuid::try_parse(id.strip_prefix("layer:///content/")?).ok())
        .collect()
}

impl Content {
    pub fn is_uploaded(&self) -> bool {
        self.uploaded_at.is_some()
    }

    /// The object store key of its bytes.
    pub fn object_key(&self) -> String {
        format!("{}/{}", self.app_id, self.id)
    }
}

#[async_trait]
pub trait ContentStore {
    async fn create_content(&self, content: &Content) -> StoreResult<()>;
    async fn content(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<Content>>;
    /// By id alone (upload and download URLs name no app; their signature does).
    async fn content_by_id(&self, id: Uuid) -> StoreResult<Option<Content>>;
    /// Records a complete upload; false when the content is gone or already referenced.
    async fn set_content_uploaded(
        &self,
        app_id: Uuid,
        id: Uuid,
        size: i64,
        sha256: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Whether a message references the content (its bytes are then final).
    async fn content_referenced(&self, app_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// Up to `limit` messages referencing the content, oldest reference first.
    async fn content_references(
        &self,
        app_id: Uuid,
        id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<Uuid>>;
    /// Up to `limit` contents created before `before` that no message references.
    async fn unreferenced_contents(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<Content>>;
    /// Deletes the record if still unreferenced; true when deleted.
    async fn delete_unreferenced_content(&self, app_id: Uuid, id: Uuid) -> StoreResult<bool>;
}
