//! The SQL of `ContentStore`, one body for both backends (see `sql.rs`).

macro_rules! impl_content_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Marks the contents `parts` reference as referenced by `message_id` (a message of
            /// a conversation or a channel, or an announcement), on the caller's connection:
            /// inside the transaction that writes the parts, so that they and their references
            /// commit together and garbage collection never sees sent content unreferenced. A
            /// content collected in the meantime fails the foreign key, and with it the write
            /// (`StoreError::ContentGone`).
            pub(crate) async fn reference_contents(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                parts: &[$crate::store::Part],
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                for id in $crate::store::content::referenced_ids(parts) {
                    sqlx::query(
                        "insert into content_references (app_id, content_id, message_id, created_at)
                         values ($1, $2, $3, $4) on conflict do nothing",
                    )
                    .bind(app_id)
                    .bind(id)
                    .bind(message_id)
                    .bind(at)
                    .execute(&mut *conn)
                    .await
                    .map_err(|err| match &err {
                        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                            $crate::store::StoreError::ContentGone
                        }
                        _ => err.into(),
                    })?;
                }
                Ok(())
            }
        }

        const CONTENT_COLUMNS: &str = "app_id, id, owner_user_id, conversation_id, content_type, \
             declared_size, size, sha256, created_at, uploaded_at";
        const UNREFERENCED: &str = "not exists (select 1 from content_references r \
             where r.app_id = contents.app_id and r.content_id = contents.id)";

        #[async_trait::async_trait]
        impl $crate::store::ContentStore for $store {
            async fn create_content(
                &self,
                c: &$crate::store::Content,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(&format!(
                    "insert into contents ({CONTENT_COLUMNS})
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(c.app_id)
                .bind(c.id)
                .bind(&c.owner_user_id)
                .bind(c.conversation_id)
                .bind(&c.content_type)
                .bind(c.declared_size)
                .bind(c.size)
                .bind(&c.sha256)
                .bind(c.created_at)
                .bind(c.uploaded_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn content(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Content>> {
                Ok(sqlx::query_as(&format!(
                    "select {CONTENT_COLUMNS} from contents where app_id = $1 and id = $2"
                ))
                .bind(app_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn content_by_id(
                &self,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Content>> {
                Ok(sqlx::query_as(&format!(
                    "select {CONTENT_COLUMNS} from contents where id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn set_content_uploaded(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                size: i64,
                sha256: &str,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                let updated = sqlx::query(&format!(
                    "update contents set size = $3, sha256 = $4, uploaded_at = $5
                     where app_id = $1 and id = $2 and {UNREFERENCED}"
                ))
                .bind(app_id)
                .bind(id)
                .bind(size)
                .bind(sha256)
                .bind(at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn content_referenced(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                let row: Option<(i32,)> = sqlx::query_as(
                    "select 1 from content_references where app_id = $1 and content_id = $2 limit 1",
                )
                .bind(app_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn content_references(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<uuid::Uuid>> {
                let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(
                    "select message_id from content_references
                     where app_id = $1 and content_id = $2
                     order by created_at, message_id limit $3",
                )
                .bind(app_id)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(m,)| m).collect())
            }

            async fn unreferenced_contents(
                &self,
                before: $crate::store::Timestamp,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Content>> {
                Ok(sqlx::query_as(&format!(
                    "select {CONTENT_COLUMNS} from contents
                     where created_at < $1 and {UNREFERENCED}
                     order by created_at limit $2"
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delete_unreferenced_content(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                let deleted = sqlx::query(&format!(
                    "delete from contents where app_id = $1 and id = $2 and {UNREFERENCED}"
                ))
                .bind(app_id)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(deleted == 1)
            }
        }
    };
}

pub(crate) use impl_content_store;
