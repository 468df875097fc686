//! The SQL of the change log, one body for both backends: `record` (called inside the
//! transaction of every mutation that users must hear about) and `ChangeLogStore`.

/// Rows per multi-row statement (far below both backends' bound-parameter limits).
pub const CHUNK: usize = 1000;

macro_rules! impl_change_log {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Appends the events to their users' streams, in the caller's transaction: one
            /// upsert of `user_streams` (users in sorted order, so concurrent writers lock them
            /// in the same order) and one multi-row insert of `changes` per chunk. A user's `at`
            /// never goes backwards. Returns the changes appended, for the feed after commit.
            async fn record(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                mut events: Vec<(String, $crate::store::Event)>,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Appended>> {
                use $crate::store::changes_sql::CHUNK;
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                // Stable: a user's events keep the order they were given in.
                events.sort_by(|a, b| a.0.cmp(&b.0));
                let mut counts: Vec<(String, i64)> = Vec::new();
                for (user, _) in &events {
                    match counts.last_mut() {
                        Some((last, n)) if last == user => *n += 1,
                        _ => counts.push((user.clone(), 1)),
                    }
                }
                let mut heads: std::collections::HashMap<String, (i64, $crate::store::Timestamp)> =
                    std::collections::HashMap::with_capacity(counts.len());
                for chunk in counts.chunks(CHUNK) {
                    let mut query = sqlx::QueryBuilder::<$db>::new("");
                    Self::push_stream_heads(&mut query, app_id, chunk, now);
                    query.push(" returning user_id, last_seq, last_at");
                    let rows: Vec<(String, i64, $crate::store::Timestamp)> =
                        query.build_query_as().fetch_all(&mut *conn).await?;
                    heads.extend(rows.into_iter().map(|(user, seq, at)| (user, (seq, at))));
                }
                // Each user's new seqs are head - n + 1 ..= head, in the order given.
                let mut appended = Vec::with_capacity(events.len());
                let mut events = events.into_iter();
                for (user, n) in &counts {
                    let head = heads.get(user).copied();
                    for k in 0..*n {
                        let Some((user, event)) = events.next() else { break };
                        if let Some((last_seq, at)) = head {
                            appended.push($crate::store::Appended {
                                user,
                                seq: last_seq - n + 1 + k,
                                at,
                                event: std::sync::Arc::new(event),
                            });
                        }
                    }
                }
                for chunk in appended.chunks(CHUNK) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "insert into changes (app_id, user_id, seq, at, event) ",
                    );
                    query.push_values(chunk, |mut row, change| {
                        // Serialising these plain enums cannot fail; an empty event would be
                        // skipped at delivery.
                        let json = serde_json::to_string(&*change.event).unwrap_or_default();
                        row.push_bind(app_id)
                            .push_bind(change.user.as_str())
                            .push_bind(change.seq)
                            .push_bind(change.at)
                            .push_bind(json);
                    });
                    query.build().execute(&mut *conn).await?;
                }
                Ok(appended)
            }

            /// The upsert of `user_streams` that advances each user's head by their count of
            /// new changes (users in sorted order, so concurrent writers lock them in the same
            /// order); `at` never goes backwards. Open for a `returning` clause.
            fn push_stream_heads<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                app_id: uuid::Uuid,
                counts: &'a [(String, i64)],
                now: $crate::store::Timestamp,
            ) {
                query.push("insert into user_streams (app_id, user_id, last_seq, last_at) ");
                query.push_values(counts, |mut row, (user, n)| {
                    row.push_bind(app_id)
                        .push_bind(user.as_str())
                        .push_bind(*n)
                        .push_bind(now);
                });
                query.push(
                    " on conflict (app_id, user_id) do update set
                        last_seq = user_streams.last_seq + excluded.last_seq,
                        last_at = case when user_streams.last_at > excluded.last_at
                            then user_streams.last_at else excluded.last_at end",
                );
            }

            /// `record` for one event to several users.
            async fn record_for(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                users: &[String],
                event: &$crate::store::Event,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Appended>> {
                let events = users.iter().map(|u| (u.clone(), event.clone())).collect();
                Self::record(conn, app_id, events, now).await
            }

            /// `record_for`, then commits and hands the changes to the feed.
            async fn commit_for(
                &self,
                mut tx: $crate::store::write_tx::WriteTx<$db>,
                app_id: uuid::Uuid,
                users: &[String],
                event: &$crate::store::Event,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                let touched = Self::record_for(&mut tx, app_id, users, event, now).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                Ok(())
            }

            /// Who hears about changes of `user_id`'s identity: the user and their followers.
            async fn identity_audience(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<Vec<String>> {
                let mut users: Vec<String> = sqlx::query_scalar(
                    "select follower_user_id from follows
                     where app_id = $1 and followed_user_id = $2 and following",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_all(&mut *conn)
                .await?;
                users.retain(|u| u != user_id);
                users.push(user_id.to_owned());
                Ok(users)
            }

            /// Current participants of a conversation.
            async fn participants_of(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "select user_id from conversation_members
                     where app_id = $1 and conversation_id = $2 and is_participant order by seq",
                )
                .bind(app_id)
                .bind(conversation_id)
                .fetch_all(&mut *conn)
                .await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ChangeLogStore for $store {
            fn change_feed(&self) -> std::sync::Arc<$crate::store::ChangeFeed> {
                self.feed.clone()
            }

            fn postgres_pool(&self) -> Option<sqlx::PgPool> {
                $crate::store::changes::NotifyPool::postgres(&self.pool)
            }

            async fn stream_head(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<i64> {
                let head: Option<i64> = sqlx::query_scalar(
                    "select last_seq from user_streams where app_id = $1 and user_id = $2",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(head.unwrap_or(0))
            }

            async fn changes_after(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                after: i64,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Change>> {
                let rows: Vec<(i64, $crate::store::Timestamp, String)> = sqlx::query_as(
                    "select seq, at, event from changes
                     where app_id = $1 and user_id = $2 and seq > $3 order by seq limit $4",
                )
                .bind(app_id)
                .bind(user_id)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, at, event)| $crate::store::Change {
                        seq,
                        at,
                        event: serde_json::from_str(&event).ok().map(std::sync::Arc::new),
                    })
                    .collect())
            }

            async fn seq_before(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<i64> {
                let first: Option<i64> = sqlx::query_scalar(
                    "select min(seq) from changes where app_id = $1 and user_id = $2 and at >= $3",
                )
                .bind(app_id)
                .bind(user_id)
                .bind(at)
                .fetch_one(&self.pool)
                .await?;
                match first {
                    Some(seq) => Ok(seq - 1),
                    None => $crate::store::ChangeLogStore::stream_head(self, app_id, user_id).await,
                }
            }

            async fn followers(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "select follower_user_id from follows
                     where app_id = $1 and followed_user_id = $2 and following
                       and follower_user_id <> $2",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn prune_changes(
                &self,
                before: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                Ok(sqlx::query("delete from changes where at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }
        }
    };
}

pub(crate) use impl_change_log;
