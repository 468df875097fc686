//! The SQL of `UserStore` (one body for both backends; see `sql.rs`).
// PLACEHOLDER: replaced by the real implementation before this lands.
macro_rules! impl_user_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn user_state(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
            ) -> $crate::store::StoreResult<$crate::store::UserState> {
                todo!()
            }
            async fn set_suspended(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _suspended: bool,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                todo!()
            }
            async fn set_external_unread_count(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
                _count: i64,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                todo!()
            }
            async fn badge(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
            ) -> $crate::store::StoreResult<$crate::store::Badge> {
                todo!()
            }
            async fn set_session_ttl(
                &self,
                _app_id: uuid::Uuid,
                _secs: Option<i64>,
            ) -> $crate::store::StoreResult<()> {
                todo!()
            }
            async fn session_ttl(
                &self,
                _app_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<i64>> {
                todo!()
            }
            async fn delete_sessions(
                &self,
                _app_id: uuid::Uuid,
                _user_id: &str,
            ) -> $crate::store::StoreResult<u64> {
                todo!()
            }
            async fn blocks(
                &self,
                _app_id: uuid::Uuid,
                _owner: &str,
            ) -> $crate::store::StoreResult<Vec<String>> {
                todo!()
            }
            async fn replace_blocks(
                &self,
                _app_id: uuid::Uuid,
                _owner: &str,
                _blocked: &[String],
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                todo!()
            }
            async fn blockers_among(
                &self,
                _app_id: uuid::Uuid,
                _owners: &[String],
                _user: &str,
            ) -> $crate::store::StoreResult<Vec<String>> {
                todo!()
            }
            async fn follow(
                &self,
                _app_id: uuid::Uuid,
                _follower: &str,
                _followed: &[String],
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                todo!()
            }
            async fn unfollow(
                &self,
                _app_id: uuid::Uuid,
                _follower: &str,
                _followed: &str,
                _at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                todo!()
            }
            async fn is_following(
                &self,
                _app_id: uuid::Uuid,
                _follower: &str,
                _followed: &str,
            ) -> $crate::store::StoreResult<bool> {
                todo!()
            }
            async fn followed(
                &self,
                _app_id: uuid::Uuid,
                _follower: &str,
                _after: Option<&str>,
                _limit: u32,
            ) -> $crate::store::StoreResult<Vec<String>> {
                todo!()
            }
        }
    };
}

pub(crate) use impl_user_store;
