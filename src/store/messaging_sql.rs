//! The SQL of `MessagingStore` (one body for both backends; see `sql.rs`).
macro_rules! impl_messaging_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::MessagingStore for $store {
            async fn create_conversation(
                &self,
                _new: &$crate::store::NewConversation,
            ) -> $crate::store::StoreResult<$crate::store::CreateConversation> {
                todo!()
            }
            async fn conversation(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Conversation>> {
                todo!()
            }
            async fn update_conversation(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
                _revision: i64,
                _change: &$crate::store::ConversationChange,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::Updated> {
                todo!()
            }
            async fn delete_conversation(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::Deleted> {
                todo!()
            }
            async fn user_conversation(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserConversation>> {
                todo!()
            }
            async fn user_conversations(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _sort: $crate::store::ConversationSort,
                _page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::UserConversation>>
            {
                todo!()
            }
            async fn hide_conversation(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _id: uuid::Uuid,
                _leave: bool,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn mark_all_read(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _conversation_id: uuid::Uuid,
                _position: Option<i64>,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<Option<i64>> {
                todo!()
            }
            async fn send_message(
                &self,
                _new: &$crate::store::NewMessage,
            ) -> $crate::store::StoreResult<$crate::store::SendMessage> {
                todo!()
            }
            async fn message(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Message>> {
                todo!()
            }
            async fn messages(
                &self,
                _app_id: uuid::Uuid,
                _conversation_id: uuid::Uuid,
                _viewer: Option<(&str, &$crate::store::Membership)>,
                _page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::Message>> {
                todo!()
            }
            async fn message_hidden_for(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
                _user_id: &str,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn delete_message(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn hide_message(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
                _user_id: &str,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                todo!()
            }
            async fn set_receipt(
                &self,
                _app_id: uuid::Uuid,
                _message_id: uuid::Uuid,
                _user_id: &str,
                _status: $crate::store::ReceiptStatus,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn add_part(
                &self,
                _app_id: uuid::Uuid,
                _message_id: uuid::Uuid,
                _part: &$crate::store::Part,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                todo!()
            }
            async fn update_part(
                &self,
                _app_id: uuid::Uuid,
                _message_id: uuid::Uuid,
                _part: &$crate::store::Part,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                todo!()
            }
            async fn replace_parts(
                &self,
                _app_id: uuid::Uuid,
                _message_id: uuid::Uuid,
                _parts: &[$crate::store::Part],
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                todo!()
            }
            async fn delete_part(
                &self,
                _app_id: uuid::Uuid,
                _message_id: uuid::Uuid,
                _part_id: uuid::Uuid,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                todo!()
            }
            async fn create_announcement(
                &self,
                _announcement: &$crate::store::Announcement,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn announcement(
                &self,
                _app_id: uuid::Uuid,
                _id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Announcement>> {
                todo!()
            }
            async fn user_announcement(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserAnnouncement>> {
                todo!()
            }
            async fn user_announcements(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::UserAnnouncement>>
            {
                todo!()
            }
            async fn set_announcement_receipt(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _id: uuid::Uuid,
                _status: $crate::store::ReceiptStatus,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn hide_announcement(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn identities_of(
                &self,
                _app_id: uuid::Uuid,
                _user_ids: &[String],
            ) -> $crate::store::StoreResult<Vec<$crate::store::Identity>> {
                todo!()
            }
        }
    };
}

pub(crate) use impl_messaging_store;
