//! The SQL of `UserStore` (one body for both backends; see `sql.rs`). Lists of ids become
//! `in (...)` lists built with `QueryBuilder`, which writes each backend's own placeholders.

/// Ids per `in (...)` list: far below SQLite's and Postgres' limits on bound parameters.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// A `QueryBuilder` for the pool's backend (the backend is inferred from the pool).
pub(crate) fn query_builder<'args, DB: sqlx::Database>(
    _pool: &sqlx::Pool<DB>,
    sql: &str,
) -> sqlx::QueryBuilder<'args, DB>
where
    DB::Arguments<'args>: Default,
{
    sqlx::QueryBuilder::new(sql)
}

/// Blocks user $3 for owner $2 in app $1 at $4; a block already there keeps its time.
pub(crate) const BLOCK: &str =
    "insert into blocks (app_id, owner_user_id, blocked_user_id, created_at) values ($1, $2, $3, $4)
     on conflict (app_id, owner_user_id, blocked_user_id) do nothing";

/// Unblocks user $3 for owner $2 in app $1.
pub(crate) const UNBLOCK: &str =
    "delete from blocks where app_id = $1 and owner_user_id = $2 and blocked_user_id = $3";

macro_rules! impl_user_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn user_state(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<$crate::store::UserState> {
                let row: Option<(bool, Option<i64>)> = sqlx::query_as(
                    "select suspended, external_unread_count from users
                     where app_id = $1 and user_id = $2",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row
                    .map(|(suspended, external_unread_count)| $crate::store::UserState {
                        suspended,
                        external_unread_count,
                    })
                    .unwrap_or_default())
            }

            async fn set_suspended(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                suspended: bool,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "insert into users (app_id, user_id, suspended, created_at) values ($1, $2, $3, $4)
                     on conflict (app_id, user_id) do update set suspended = excluded.suspended",
                )
                .bind(app_id)
                .bind(user_id)
                .bind(suspended)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                if suspended {
                    sqlx::query("delete from sessions where app_id = $1 and user_id = $2")
                        .bind(app_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_external_unread_count(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                count: i64,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "insert into users (app_id, user_id, external_unread_count, created_at)
                     values ($1, $2, $3, $4)
                     on conflict (app_id, user_id) do update
                        set external_unread_count = excluded.external_unread_count",
                )
                .bind(app_id)
                .bind(user_id)
                .bind(count)
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn badge(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<$crate::store::Badge> {
                // Unread = not read yet, not deleted for the user, and inside the part of the
                // conversation the member sees (after a my_devices delete, up to leaving).
                let (messages, conversations): (i64, i64) = sqlx::query_as(
                    "select count(*), count(distinct r.conversation_id)
                     from message_recipients r
                     join conversation_members m
                       on m.app_id = r.app_id and m.conversation_id = r.conversation_id
                      and m.user_id = r.user_id
                     join conversations c on c.app_id = r.app_id and c.id = r.conversation_id
                     where r.app_id = $1 and r.user_id = $2 and r.status < 2 and not r.hidden
                       and r.position > coalesce(m.hidden_position, 0)
                       and (m.left_position is null or r.position <= m.left_position)
                       and c.deleted_at is null",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?;
                let state = self.user_state(app_id, user_id).await?;
                Ok($crate::store::Badge {
                    external_unread_count: state.external_unread_count.unwrap_or(0),
                    unread_conversation_count: conversations,
                    unread_message_count: messages,
                })
            }

            async fn set_session_ttl(
                &self,
                app_id: uuid::Uuid,
                secs: Option<i64>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("update apps set session_ttl_secs = $2 where id = $1")
                    .bind(app_id)
                    .bind(secs)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn session_ttl(
                &self,
                app_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<i64>> {
                let ttl: Option<Option<i64>> =
                    sqlx::query_scalar("select session_ttl_secs from apps where id = $1")
                        .bind(app_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(ttl.flatten())
            }

            async fn delete_sessions(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<u64> {
                Ok(sqlx::query("delete from sessions where app_id = $1 and user_id = $2")
                    .bind(app_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn blocks(
                &self,
                app_id: uuid::Uuid,
                owner: &str,
            ) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "select blocked_user_id from blocks where app_id = $1 and owner_user_id = $2
                     order by created_at, blocked_user_id",
                )
                .bind(app_id)
                .bind(owner)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn replace_blocks(
                &self,
                app_id: uuid::Uuid,
                owner: &str,
                blocked: &[String],
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                if blocked.is_empty() {
                    sqlx::query("delete from blocks where app_id = $1 and owner_user_id = $2")
                        .bind(app_id)
                        .bind(owner)
                        .execute(&self.pool)
                        .await?;
                    return Ok(());
                }
                let mut tx = self.begin().await?;
                // Write first: on SQLite the transaction then holds the write lock before it reads
                // (a read that later writes can fail at once when another writer came between).
                for user in blocked {
                    sqlx::query($crate::store::users_sql::BLOCK)
                        .bind(app_id)
                        .bind(owner)
                        .bind(user)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                let current: Vec<String> = sqlx::query_scalar(
                    "select blocked_user_id from blocks where app_id = $1 and owner_user_id = $2",
                )
                .bind(app_id)
                .bind(owner)
                .fetch_all(&mut *tx)
                .await?;
                for user in current.iter().filter(|u| !blocked.contains(u)) {
                    sqlx::query($crate::store::users_sql::UNBLOCK)
                        .bind(app_id)
                        .bind(owner)
                        .bind(user)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn blocked_identities(
                &self,
                app_id: uuid::Uuid,
                owner: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Identity>> {
                Ok(sqlx::query_as(concat!(
                    "select ", $crate::store::sql::identity_columns!(), " from identities
                     where app_id = $1 and user_id in (
                        select blocked_user_id from blocks where app_id = $1 and owner_user_id = $2)"
                ))
                .bind(app_id)
                .bind(owner)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn change_blocks(
                &self,
                app_id: uuid::Uuid,
                owner: &str,
                add: &[String],
                remove: &[String],
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin().await?;
                for user in remove {
                    sqlx::query($crate::store::users_sql::UNBLOCK)
                        .bind(app_id)
                        .bind(owner)
                        .bind(user)
                        .execute(&mut *tx)
                        .await?;
                }
                for user in add {
                    sqlx::query($crate::store::users_sql::BLOCK)
                        .bind(app_id)
                        .bind(owner)
                        .bind(user)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn blockers_among(
                &self,
                app_id: uuid::Uuid,
                owners: &[String],
                user: &str,
            ) -> $crate::store::StoreResult<Vec<String>> {
                let mut blockers = std::collections::HashSet::new();
                for chunk in owners.chunks($crate::store::users_sql::IN_LIST_CHUNK) {
                    let mut query = $crate::store::users_sql::query_builder(
                        &self.pool,
                        "select owner_user_id from blocks where app_id = ",
                    );
                    query.push_bind(app_id);
                    query.push(" and blocked_user_id = ");
                    query.push_bind(user);
                    query.push(" and owner_user_id in (");
                    let mut list = query.separated(", ");
                    for owner in chunk {
                        list.push_bind(owner);
                    }
                    query.push(")");
                    let found: Vec<String> =
                        query.build_query_scalar().fetch_all(&self.pool).await?;
                    blockers.extend(found);
                }
                let mut seen = std::collections::HashSet::new();
                Ok(owners
                    .iter()
                    .filter(|o| blockers.contains(*o) && seen.insert(*o))
                    .cloned()
                    .collect())
            }

            async fn follow(
                &self,
                app_id: uuid::Uuid,
                follower: &str,
                followed: &[String],
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin().await?;
                for user in followed {
                    // Following again keeps the original place in the list; following after an
                    // unfollow starts a new one.
                    sqlx::query(
                        "insert into follows
                            (app_id, follower_user_id, followed_user_id, following, created_at)
                         values ($1, $2, $3, true, $4)
                         on conflict (app_id, follower_user_id, followed_user_id) do update
                            set following = true,
                                created_at = case when follows.following then follows.created_at
                                                  else excluded.created_at end",
                    )
                    .bind(app_id)
                    .bind(follower)
                    .bind(user)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                let events = followed
                    .iter()
                    .map(|user| {
                        let event = $crate::store::Event::IdentityFollowed { user: user.clone() };
                        (follower.to_owned(), event)
                    })
                    .collect();
                let touched = Self::record(&mut tx, app_id, events, at).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                Ok(())
            }

            async fn unfollow(
                &self,
                app_id: uuid::Uuid,
                follower: &str,
                followed: &str,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "insert into follows
                        (app_id, follower_user_id, followed_user_id, following, created_at)
                     values ($1, $2, $3, false, $4)
                     on conflict (app_id, follower_user_id, followed_user_id) do update
                        set following = false",
                )
                .bind(app_id)
                .bind(follower)
                .bind(followed)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let event = $crate::store::Event::IdentityUnfollowed { user: followed.to_owned() };
                let touched = Self::record_for(&mut tx, app_id, &[follower.to_owned()], &event, at).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                Ok(())
            }

            async fn is_following(
                &self,
                app_id: uuid::Uuid,
                follower: &str,
                followed: &str,
            ) -> $crate::store::StoreResult<bool> {
                let following: Option<bool> = sqlx::query_scalar(
                    "select following from follows
                     where app_id = $1 and follower_user_id = $2 and followed_user_id = $3",
                )
                .bind(app_id)
                .bind(follower)
                .bind(followed)
                .fetch_optional(&self.pool)
                .await?;
                Ok(following.unwrap_or(false))
            }

            async fn followed(
                &self,
                app_id: uuid::Uuid,
                follower: &str,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(concat!(
                    "select followed_user_id from follows f
                     where f.app_id = $1 and f.follower_user_id = $2 and f.following and ",
                    $crate::store::users_sql::after_follow!(),
                    " order by f.created_at, f.followed_user_id limit $4"
                ))
                .bind(app_id)
                .bind(follower)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn followed_count(
                &self,
                app_id: uuid::Uuid,
                follower: &str,
            ) -> $crate::store::StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "select count(*) from follows
                     where app_id = $1 and follower_user_id = $2 and following",
                )
                .bind(app_id)
                .bind(follower)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn user_is_known(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<bool> {
                let found: Option<i32> = sqlx::query_scalar(
                    "select 1 where
                        exists (select 1 from identities where app_id = $1 and user_id = $2)
                     or exists (select 1 from sessions where app_id = $1 and user_id = $2)
                     or exists (select 1 from conversation_members
                                where app_id = $1 and user_id = $2)
                     or exists (select 1 from announcement_recipients
                                where app_id = $1 and user_id = $2)
                     or exists (select 1 from follows where app_id = $1 and follower_user_id = $2)
                     or exists (select 1 from follows where app_id = $1 and followed_user_id = $2)
                     or exists (select 1 from users where app_id = $1 and user_id = $2)",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(found.is_some())
            }

            async fn register_push_token(
                &self,
                token: &$crate::store::PushToken,
                keep: u32,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin().await?;
                // Write first (SQLite then holds the write lock before it reads the sequence).
                sqlx::query(
                    "delete from push_tokens
                     where app_id = $1 and token = $2 and device_id <> $3",
                )
                .bind(token.app_id)
                .bind(&token.token)
                .bind(&token.device_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into push_tokens
                        (app_id, device_id, user_id, token, token_type, apns_bundle_id,
                         gcm_sender_id, ios_version, registered_seq, registered_at)
                     values ($1, $2, $3, $4, $5, $6, $7, $8,
                             (select coalesce(max(registered_seq), 0) + 1 from push_tokens
                              where app_id = $1 and user_id = $3),
                             $9)
                     on conflict (app_id, device_id) do update set
                        user_id = excluded.user_id,
                        token = excluded.token,
                        token_type = excluded.token_type,
                        apns_bundle_id = excluded.apns_bundle_id,
                        gcm_sender_id = excluded.gcm_sender_id,
                        ios_version = excluded.ios_version,
                        registered_seq = excluded.registered_seq,
                        registered_at = excluded.registered_at",
                )
                .bind(token.app_id)
                .bind(&token.device_id)
                .bind(&token.user_id)
                .bind(&token.token)
                .bind(&token.token_type)
                .bind(&token.apns_bundle_id)
                .bind(&token.gcm_sender_id)
                .bind(&token.ios_version)
                .bind(token.registered_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "delete from push_tokens
                     where app_id = $1 and user_id = $2 and device_id not in (
                        select device_id from push_tokens where app_id = $1 and user_id = $2
                        order by registered_seq desc, device_id limit $3)",
                )
                .bind(token.app_id)
                .bind(&token.user_id)
                .bind(i64::from(keep))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn unregister_push_token(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                device_id: &str,
            ) -> $crate::store::StoreResult<bool> {
                let removed = sqlx::query(
                    "delete from push_tokens
                     where app_id = $1 and user_id = $2 and device_id = $3",
                )
                .bind(app_id)
                .bind(user_id)
                .bind(device_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(removed > 0)
            }

            async fn push_tokens(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::store::PushToken>> {
                Ok(sqlx::query_as(
                    "select app_id, user_id, device_id, token, token_type, apns_bundle_id,
                            gcm_sender_id, ios_version, registered_at
                     from push_tokens where app_id = $1 and user_id = $2
                     order by registered_seq desc, device_id",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

/// The paging condition of the follow lists: rows of `f` (app $1, follower $2) after the row of
/// the followed user $3 in the order (created_at, followed_user_id); every row when $3 is null.
/// The cursor row may be an unfollow: it keeps its place, so paging survives an unfollow.
macro_rules! after_follow {
    () => {
        "($3 is null or (f.created_at, f.followed_user_id) > (
            select c.created_at, c.followed_user_id from follows c
            where c.app_id = $1 and c.follower_user_id = $2 and c.followed_user_id = $3))"
    };
}

pub(crate) use {after_follow, impl_user_store};
