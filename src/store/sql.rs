//! The SQL of the store, written once for both backends: the statements below are valid Postgres
//! and SQLite alike (`$n` parameters, `on conflict`, `returning`), so one macro body implements
//! `Store` for `PgStore` and `SqliteStore`. Times are always bound from Rust, never `now()`.

macro_rules! impl_sql_store {
    ($store:ty, $backend:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("select 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.close_pools().await;
            }

            async fn create_app(&self, app: &$crate::store::App) -> $crate::store::StoreResult<()> {
                sqlx::query("insert into apps (id, name, provider_id, created_at) values ($1, $2, $3, $4)")
                    .bind(app.id)
                    .bind(&app.name)
                    .bind(app.provider_id)
                    .bind(app.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn upsert_app(
                &self,
                id: uuid::Uuid,
                name: &str,
                provider_id: Option<uuid::Uuid>,
            ) -> $crate::store::StoreResult<$crate::store::App> {
                let app = sqlx::query_as(
                    "insert into apps (id, name, provider_id, created_at) values ($1, $2, $3, $4)
                     on conflict (id) do update
                        set name = excluded.name,
                            provider_id = case when $5 then excluded.provider_id else apps.provider_id end
                     returning id, name, provider_id, created_at, suspended",
                )
                .bind(id)
                .bind(name)
                .bind(provider_id.unwrap_or_else(uuid::Uuid::new_v4))
                .bind($crate::store::Timestamp::now())
                .bind(provider_id.is_some())
                .fetch_one(&self.pool)
                .await?;
                Ok(app)
            }

            async fn set_app_suspended(
                &self,
                id: uuid::Uuid,
                suspended: bool,
            ) -> $crate::store::StoreResult<bool> {
                let updated = sqlx::query("update apps set suspended = $1 where id = $2")
                    .bind(suspended)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(updated > 0)
            }

            async fn app(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::App>> {
                Ok(sqlx::query_as("select id, name, provider_id, created_at, suspended from apps where id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn apps(&self) -> $crate::store::StoreResult<Vec<$crate::store::App>> {
                Ok(sqlx::query_as(
                    "select id, name, provider_id, created_at, suspended from apps order by created_at, id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn add_token(
                &self,
                token: &$crate::store::BearerToken,
            ) -> $crate::store::StoreResult<bool> {
                let inserted = sqlx::query(
                    "insert into bearer_tokens (id, app_id, token_hash, label, source, created_at, revoked_at)
                     values ($1, $2, $3, $4, $5, $6, $7)
                     on conflict (token_hash) do nothing",
                )
                .bind(token.id)
                .bind(token.app_id)
                .bind(&token.token_hash)
                .bind(&token.label)
                .bind(&token.source)
                .bind(token.created_at)
                .bind(token.revoked_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn tokens(
                &self,
                app_id: Option<uuid::Uuid>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::BearerToken>> {
                Ok(sqlx::query_as(
                    "select id, app_id, token_hash, label, source, created_at, revoked_at
                     from bearer_tokens where $1 is null or app_id = $1
                     order by created_at, id",
                )
                .bind(app_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn revoke_token(
                &self,
                id: uuid::Uuid,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                let revoked = sqlx::query(
                    "update bearer_tokens set revoked_at = $2 where id = $1 and revoked_at is null",
                )
                .bind(id)
                .bind(at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(revoked == 1)
            }

            async fn active_token(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::ActiveToken>> {
                Ok(sqlx::query_as(
                    "select t.id, t.app_id, t.token_hash, t.label, t.source, t.created_at,
                            t.revoked_at, a.suspended as app_suspended
                     from bearer_tokens t join apps a on a.id = t.app_id
                     where t.token_hash = $1 and t.revoked_at is null",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn add_key(&self, key: &$crate::store::ProviderKey) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "insert into provider_keys (id, app_id, provider_id, public_key_pem, source, created_at)
                     values ($1, $2, $3, $4, $5, $6)",
                )
                .bind(key.id)
                .bind(key.app_id)
                .bind(key.provider_id)
                .bind(&key.public_key_pem)
                .bind(&key.source)
                .bind(key.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn upsert_key(&self, key: &$crate::store::ProviderKey) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "insert into provider_keys (id, app_id, provider_id, public_key_pem, source, created_at)
                     values ($1, $2, $3, $4, $5, $6)
                     on conflict (id) do update
                        set app_id = excluded.app_id,
                            provider_id = excluded.provider_id,
                            public_key_pem = excluded.public_key_pem,
                            source = excluded.source",
                )
                .bind(key.id)
                .bind(key.app_id)
                .bind(key.provider_id)
                .bind(&key.public_key_pem)
                .bind(&key.source)
                .bind(key.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn keys(
                &self,
                app_id: Option<uuid::Uuid>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ProviderKey>> {
                Ok(sqlx::query_as(
                    "select id, app_id, provider_id, public_key_pem, source, created_at
                     from provider_keys where $1 is null or app_id = $1
                     order by created_at, id",
                )
                .bind(app_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn remove_key(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                let removed = sqlx::query("delete from provider_keys where id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(removed == 1)
            }

            async fn key(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::ProviderKey>> {
                Ok(sqlx::query_as(
                    "select id, app_id, provider_id, public_key_pem, source, created_at
                     from provider_keys where app_id = $1 and id = $2",
                )
                .bind(app_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn create_nonce(
                &self,
                nonce_hash: &str,
                expires_at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("insert into nonces (nonce_hash, expires_at) values ($1, $2)")
                    .bind(nonce_hash)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn consume_nonce(
                &self,
                nonce_hash: &str,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                // One statement: of two concurrent uses only one deletes the row.
                let burned = sqlx::query("delete from nonces where nonce_hash = $1 and expires_at > $2")
                    .bind(nonce_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(burned == 1)
            }

            async fn create_session(
                &self,
                token_hash: &str,
                session: &$crate::store::Session,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "insert into sessions (token_hash, app_id, user_id, created_at, expires_at)
                     values ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(session.app_id)
                .bind(&session.user_id)
                .bind(session.created_at)
                .bind(session.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session(
                &self,
                token_hash: &str,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<Option<$crate::store::Session>> {
                Ok(sqlx::query_as(
                    // A suspended app's sessions are dead (401): the client logs in again
                    // and learns `app_suspended` from POST /sessions.
                    "select s.app_id, s.user_id, s.created_at, s.expires_at from sessions s
                     join apps a on a.id = s.app_id
                     where s.token_hash = $1 and s.expires_at > $2 and not a.suspended",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_session(&self, token_hash: &str) -> $crate::store::StoreResult<bool> {
                let deleted = sqlx::query("delete from sessions where token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(deleted > 0)
            }

            async fn insert_identity(
                &self,
                identity: &$crate::store::Identity,
            ) -> $crate::store::StoreResult<bool> {
                let inserted = sqlx::query(concat!(
                    "insert into identities (", $crate::store::sql::identity_columns!(), ")
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     on conflict (app_id, user_id) do nothing"
                ));
                let inserted = $crate::store::sql::bind_identity!(inserted, identity)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(inserted == 1)
            }

            async fn put_identity(
                &self,
                identity: &$crate::store::Identity,
            ) -> $crate::store::StoreResult<bool> {
                let query = sqlx::query_scalar(concat!(
                    "insert into identities (", $crate::store::sql::identity_columns!(), ")
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     on conflict (app_id, user_id) do update set
                        display_name = excluded.display_name,
                        avatar_url = excluded.avatar_url,
                        first_name = excluded.first_name,
                        last_name = excluded.last_name,
                        phone_number = excluded.phone_number,
                        email_address = excluded.email_address,
                        identity_type = excluded.identity_type,
                        public_key = excluded.public_key,
                        metadata = excluded.metadata,
                        updated_at = excluded.updated_at
                     returning created_at"
                ));
                let mut tx = self.begin().await?;
                let old: Option<$crate::store::Identity> = sqlx::query_as(concat!(
                    "select ", $crate::store::sql::identity_columns!(), " from identities where app_id = $1 and user_id = $2"
                ))
                .bind(identity.app_id)
                .bind(&identity.user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let created_at: $crate::store::Timestamp = $crate::store::sql::bind_identity!(query, identity)
                    .fetch_one(&mut *tx)
                    .await?;
                let fields = old.map(|old| old.changed_fields(identity)).unwrap_or_default();
                let mut touched = Vec::new();
                if !fields.is_empty() {
                    let users = Self::identity_audience(&mut tx, identity.app_id, &identity.user_id).await?;
                    let event = $crate::store::Event::IdentityUpdated { user: identity.user_id.clone(), fields };
                    touched = Self::record_for(&mut tx, identity.app_id, &users, &event, identity.updated_at).await?;
                }
                tx.commit().await?;
                self.feed.touched(identity.app_id, touched);
                Ok(created_at == identity.created_at)
            }

            async fn identity(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::Identity>> {
                Ok(sqlx::query_as(concat!(
                    "select ", $crate::store::sql::identity_columns!(), " from identities where app_id = $1 and user_id = $2"
                ))
                .bind(app_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_identity(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let deleted = sqlx::query("delete from identities where app_id = $1 and user_id = $2")
                    .bind(app_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted != 1 {
                    return Ok(false);
                }
                let users = Self::identity_audience(&mut tx, app_id, user_id).await?;
                let event = $crate::store::Event::IdentityDeleted { user: user_id.to_owned() };
                let touched =
                    Self::record_for(&mut tx, app_id, &users, &event, $crate::store::Timestamp::now()).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                Ok(true)
            }

            async fn claim_dedup(
                &self,
                key: &$crate::store::DedupKey,
                request_hash: &str,
                now: $crate::store::Timestamp,
                expires_at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::DedupClaim> {
                sqlx::query(
                    "delete from dedup_entries
                     where app_id = $1 and caller = $2 and tag = $3 and expires_at <= $4",
                )
                .bind(key.app_id)
                .bind(&key.caller)
                .bind(key.tag)
                .bind(now)
                .execute(&self.pool)
                .await?;
                // The primary key makes this the single point where concurrent repeats race:
                // exactly one insert wins.
                let inserted = sqlx::query(
                    "insert into dedup_entries (app_id, caller, tag, request_hash, created_at, expires_at)
                     values ($1, $2, $3, $4, $5, $6)
                     on conflict (app_id, caller, tag) do nothing",
                )
                .bind(key.app_id)
                .bind(&key.caller)
                .bind(key.tag)
                .bind(request_hash)
                .bind(now)
                .bind(expires_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok($crate::store::DedupClaim::Acquired);
                }
                let row: Option<(String, Option<i32>, Option<String>, Option<Vec<u8>>, $crate::store::Timestamp)> =
                    sqlx::query_as(
                        "select request_hash, status, headers, body, created_at from dedup_entries
                         where app_id = $1 and caller = $2 and tag = $3",
                    )
                    .bind(key.app_id)
                    .bind(&key.caller)
                    .bind(key.tag)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    // Released between our insert and select: the caller tries again.
                    None => $crate::store::DedupClaim::Pending { claimed_at: now },
                    Some((_, None, _, _, claimed_at)) => $crate::store::DedupClaim::Pending { claimed_at },
                    Some((request_hash, Some(status), headers, body, _)) => {
                        let headers = headers
                            .and_then(|h| serde_json::from_str(&h).ok())
                            .unwrap_or_default();
                        $crate::store::DedupClaim::Done {
                            request_hash,
                            response: $crate::store::StoredResponse {
                                status: u16::try_from(status).unwrap_or(500),
                                headers,
                                body: body.unwrap_or_default(),
                            },
                        }
                    }
                })
            }

            async fn complete_dedup(
                &self,
                key: &$crate::store::DedupKey,
                response: &$crate::store::StoredResponse,
            ) -> $crate::store::StoreResult<()> {
                let headers = serde_json::to_string(&response.headers).unwrap_or_else(|_| "[]".into());
                sqlx::query(
                    "update dedup_entries set status = $4, headers = $5, body = $6
                     where app_id = $1 and caller = $2 and tag = $3",
                )
                .bind(key.app_id)
                .bind(&key.caller)
                .bind(key.tag)
                .bind(i32::from(response.status))
                .bind(headers)
                .bind(&response.body)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn release_dedup(&self, key: &$crate::store::DedupKey) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "delete from dedup_entries
                     where app_id = $1 and caller = $2 and tag = $3 and status is null",
                )
                .bind(key.app_id)
                .bind(&key.caller)
                .bind(key.tag)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn prune(
                &self,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::Pruned> {
                let mut pruned = $crate::store::Pruned::default();
                for (table, count) in [
                    ("nonces", &mut pruned.nonces),
                    ("sessions", &mut pruned.sessions),
                    ("dedup_entries", &mut pruned.dedup_entries),
                ] {
                    *count = sqlx::query(&format!("delete from {table} where expires_at <= $1"))
                        .bind(now)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                }
                Ok(pruned)
            }
        }
    };
}

/// The identity columns in bind order ($1..$13).
macro_rules! identity_columns {
    () => {
        "app_id, user_id, display_name, avatar_url, first_name, last_name, phone_number, \
         email_address, identity_type, public_key, metadata, created_at, updated_at"
    };
}

macro_rules! bind_identity {
    ($query:expr, $i:expr) => {
        $query
            .bind($i.app_id)
            .bind(&$i.user_id)
            .bind(&$i.display_name)
            .bind(&$i.avatar_url)
            .bind(&$i.first_name)
            .bind(&$i.last_name)
            .bind(&$i.phone_number)
            .bind(&$i.email_address)
            .bind(&$i.identity_type)
            .bind(&$i.public_key)
            .bind(&$i.metadata)
            .bind($i.created_at)
            .bind($i.updated_at)
    };
}

pub(crate) use {bind_identity, identity_columns, impl_sql_store};
