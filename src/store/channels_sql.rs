//! The SQL of `ChannelStore`, one body for both backends (see `sql.rs`). Writes that depend on
//! what they read start with an `update` of the channel row, which takes the row lock on
//! Postgres and the write lock on SQLite, so that the member limit holds under concurrent joins.

macro_rules! impl_channel_store {
    ($store:ty, $db:ty) => {
        type ChannelConn = <$db as sqlx::Database>::Connection;

        /// Row of `channels` in `CHANNEL_COLUMNS` order.
        type ChannelRow = (
            uuid::Uuid,
            String,
            sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
            String,
            $crate::store::Timestamp,
            i64,
            Option<$crate::store::Timestamp>,
        );
        const CHANNEL_COLUMNS: &str =
            "c.id, c.name, c.metadata, c.created_by, c.created_at, c.revision, c.deleted_at";

        type ChannelMessageRow = (
            uuid::Uuid,
            uuid::Uuid,
            i64,
            String,
            $crate::store::Timestamp,
            sqlx::types::Json<Vec<$crate::store::messaging_sql::StoredPart>>,
        );
        const CHANNEL_MESSAGE_COLUMNS: &str = "id, channel_id, position, sender_user_id, sent_at, parts";

        fn channel_of(app_id: uuid::Uuid, row: ChannelRow) -> $crate::store::Channel {
            let (id, name, metadata, created_by, created_at, revision, deleted_at) = row;
            $crate::store::Channel {
                app_id,
                id,
                name,
                metadata: metadata.0,
                created_by,
                created_at,
                revision,
                deleted_at,
            }
        }

        fn channel_message_of(app_id: uuid::Uuid, row: ChannelMessageRow) -> $crate::store::ChannelMessage {
            let (id, channel_id, position, sender, sent_at, parts) = row;
            $crate::store::ChannelMessage {
                app_id,
                id,
                channel_id,
                position,
                sender,
                sent_at,
                parts: parts
                    .0
                    .into_iter()
                    .map($crate::store::messaging_sql::StoredPart::into_part)
                    .collect(),
            }
        }

        impl $store {
            async fn load_channel(
                conn: &mut ChannelConn,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Channel>> {
                let row: Option<ChannelRow> = sqlx::query_as(&format!(
                    "select {CHANNEL_COLUMNS} from channels c where c.app_id = $1 and c.id = $2"
                ))
                .bind(app_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                Ok(row.map(|row| channel_of(app_id, row)))
            }

            /// Takes the channel's write lock; false when there is no such live channel.
            async fn lock_live_channel(
                conn: &mut ChannelConn,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                let locked = sqlx::query(
                    "update channels set revision = revision
                     where app_id = $1 and id = $2 and deleted_at is null",
                )
                .bind(app_id)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                Ok(locked == 1)
            }

            /// The channel's members: who hears about its changes.
            async fn members_of(
                conn: &mut ChannelConn,
                app_id: uuid::Uuid,
                channel_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "select user_id from channel_members where app_id = $1 and channel_id = $2",
                )
                .bind(app_id)
                .bind(channel_id)
                .fetch_all(&mut *conn)
                .await?)
            }

            async fn load_channel_message(
                conn: &mut ChannelConn,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::ChannelMessage>> {
                let row: Option<ChannelMessageRow> = sqlx::query_as(&format!(
                    "select {CHANNEL_MESSAGE_COLUMNS} from channel_messages where app_id = $1 and id = $2"
                ))
                .bind(app_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                Ok(row.map(|row| channel_message_of(app_id, row)))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ChannelStore for $store {
            async fn create_channel(
                &self,
                new: &$crate::store::NewChannel,
            ) -> $crate::store::StoreResult<$crate::store::CreateChannel> {
                use $crate::store::CreateChannel;
                // A clash with a channel that is deleted before we can read it is tried again.
                for _ in 0..3 {
                    let mut tx = self.begin().await?;
                    let inserted = sqlx::query(
                        "insert into channels (app_id, id, name, metadata, created_by, created_at)
                         values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
                    )
                    .bind(new.app_id)
                    .bind(new.id)
                    .bind(&new.name)
                    .bind(sqlx::types::Json(&new.metadata))
                    .bind(&new.created_by)
                    .bind(new.created_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        if let Some(existing) = Self::load_channel(&mut tx, new.app_id, new.id).await? {
                            return Ok(CreateChannel::IdInUse(existing));
                        }
                        let named: Option<uuid::Uuid> = sqlx::query_scalar(
                            "select id from channels where app_id = $1 and name = $2 and deleted_at is null",
                        )
                        .bind(new.app_id)
                        .bind(&new.name)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(id) = named {
                            if let Some(existing) = Self::load_channel(&mut tx, new.app_id, id).await? {
                                return Ok(CreateChannel::NameTaken(existing));
                            }
                        }
                        continue;
                    }
                    if !new.members.is_empty() {
                        let mut query = sqlx::QueryBuilder::<$db>::new(
                            "insert into channel_members (app_id, channel_id, user_id, joined_at) ",
                        );
                        query.push_values(&new.members, |mut row, user| {
                            row.push_bind(new.app_id)
                                .push_bind(new.id)
                                .push_bind(user.as_str())
                                .push_bind(new.created_at);
                        });
                        query.build().execute(&mut *tx).await?;
                    }
                    let created = Self::load_channel(&mut tx, new.app_id, new.id)
                        .await?
                        .ok_or_else(|| $crate::store::StoreError::Conflict("channels".into()))?;
                    let event = $crate::store::Event::ChannelCreated { channel: new.id };
                    self.commit_for(tx, new.app_id, &new.members, &event, new.created_at).await?;
                    return Ok(CreateChannel::Created(created));
                }
                Err($crate::store::StoreError::Conflict("channels".into()))
            }

            async fn channel(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Channel>> {
                let mut conn = self.pool.acquire().await?;
                Self::load_channel(&mut conn, app_id, id).await
            }

            async fn channel_member(
                &self,
                app_id: uuid::Uuid,
                channel_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::ChannelMember>> {
                let joined_at: Option<$crate::store::Timestamp> = sqlx::query_scalar(
                    "select joined_at from channel_members
                     where app_id = $1 and channel_id = $2 and user_id = $3",
                )
                .bind(app_id)
                .bind(channel_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(joined_at.map(|joined_at| $crate::store::ChannelMember {
                    channel_id,
                    user_id: user_id.to_owned(),
                    joined_at,
                }))
            }

            async fn user_channels(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::UserChannel>> {
                const MINE: &str = "from channel_members cm
                     join channels c on c.app_id = cm.app_id and c.id = cm.channel_id
                     where cm.app_id = $1 and cm.user_id = $2 and c.deleted_at is null";
                let mut conn = self.pool.acquire().await?;
                let total: i64 = sqlx::query_scalar(&format!("select count(*) {MINE}"))
                    .bind(app_id)
                    .bind(user_id)
                    .fetch_one(&mut *conn)
                    .await?;
                // Newest first; `from_id` names the last channel of the previous page, which
                // still has its place in the order if the user left it meanwhile.
                let after = match page.after {
                    None => None,
                    Some(after) => match Self::load_channel(&mut conn, app_id, after).await? {
                        Some(channel) => Some((channel.created_at, channel.id)),
                        // An unknown from_id pages past the end rather than restarting.
                        None => return Ok($crate::store::Listing { items: Vec::new(), total }),
                    },
                };
                let rows: Vec<(uuid::Uuid, String, sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
                               String, $crate::store::Timestamp, i64, Option<$crate::store::Timestamp>,
                               $crate::store::Timestamp)> =
                    sqlx::query_as(&format!(
                        "select {CHANNEL_COLUMNS}, cm.joined_at {MINE}
                           and ($3 or c.created_at < $4 or (c.created_at = $4 and c.id < $5))
                         order by c.created_at desc, c.id desc limit $6"
                    ))
                    .bind(app_id)
                    .bind(user_id)
                    .bind(after.is_none())
                    .bind(after.map_or_else($crate::store::Timestamp::now, |(at, _)| at))
                    .bind(after.map_or_else(uuid::Uuid::nil, |(_, id)| id))
                    .bind(i64::from(page.limit))
                    .fetch_all(&mut *conn)
                    .await?;
                let items = rows
                    .into_iter()
                    .map(|(id, name, metadata, created_by, created_at, revision, deleted_at, joined_at)| {
                        $crate::store::UserChannel {
                            channel: channel_of(
                                app_id,
                                (id, name, metadata, created_by, created_at, revision, deleted_at),
                            ),
                            membership: Some($crate::store::ChannelMember {
                                channel_id: id,
                                user_id: user_id.to_owned(),
                                joined_at,
                            }),
                        }
                    })
                    .collect();
                Ok($crate::store::Listing { items, total })
            }

            async fn channel_members(
                &self,
                app_id: uuid::Uuid,
                channel_id: uuid::Uuid,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::ChannelMember>> {
                let mut conn = self.pool.acquire().await?;
                let total: i64 = sqlx::query_scalar(
                    "select count(*) from channel_members where app_id = $1 and channel_id = $2",
                )
                .bind(app_id)
                .bind(channel_id)
                .fetch_one(&mut *conn)
                .await?;
                // Keyed by user id: a page boundary holds even when that member leaves.
                let rows: Vec<(String, $crate::store::Timestamp)> = sqlx::query_as(
                    "select user_id, joined_at from channel_members
                     where app_id = $1 and channel_id = $2 and ($3 or user_id > $4)
                     order by user_id limit $5",
                )
                .bind(app_id)
                .bind(channel_id)
                .bind(after.is_none())
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
                let items = rows
                    .into_iter()
                    .map(|(user_id, joined_at)| $crate::store::ChannelMember {
                        channel_id,
                        user_id,
                        joined_at,
                    })
                    .collect();
                Ok($crate::store::Listing { items, total })
            }

            async fn update_channel_metadata(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                revision: i64,
                metadata: &serde_json::Map<String, serde_json::Value>,
            ) -> $crate::store::StoreResult<$crate::store::Updated> {
                use $crate::store::Updated;
                let mut tx = self.begin().await?;
                // The write lock first (a read first could not be upgraded on SQLite under
                // concurrent writers); then what the new metadata replaces.
                let bumped = sqlx::query(
                    "update channels set revision = revision + 1
                     where app_id = $1 and id = $2 and revision = $3 and deleted_at is null",
                )
                .bind(app_id)
                .bind(id)
                .bind(revision)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if bumped == 1 {
                    let previous: sqlx::types::Json<serde_json::Map<String, serde_json::Value>> =
                        sqlx::query_scalar("select metadata from channels where app_id = $1 and id = $2")
                            .bind(app_id)
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await?;
                    sqlx::query("update channels set metadata = $3 where app_id = $1 and id = $2")
                        .bind(app_id)
                        .bind(id)
                        .bind(sqlx::types::Json(metadata))
                        .execute(&mut *tx)
                        .await?;
                    let ops = $crate::store::messaging_sql::metadata_ops(&previous.0, metadata);
                    if ops.is_empty() {
                        tx.commit().await?;
                    } else {
                        let members = Self::members_of(&mut tx, app_id, id).await?;
                        let event = $crate::store::Event::ChannelUpdated { channel: id, ops };
                        self.commit_for(tx, app_id, &members, &event, $crate::store::Timestamp::now())
                            .await?;
                    }
                    return Ok(Updated::Done);
                }
                drop(tx);
                let mut conn = self.pool.acquire().await?;
                Ok(match Self::load_channel(&mut conn, app_id, id).await? {
                    Some(channel) if channel.deleted_at.is_none() => Updated::Stale,
                    _ => Updated::NotFound,
                })
            }

            async fn delete_channel(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::Deleted> {
                use $crate::store::Deleted;
                let mut tx = self.begin().await?;
                let updated = sqlx::query(
                    "update channels set deleted_at = $3
                     where app_id = $1 and id = $2 and deleted_at is null",
                )
                .bind(app_id)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Ok(match Self::load_channel(&mut tx, app_id, id).await? {
                        Some(_) => Deleted::AlreadyDeleted,
                        None => Deleted::NotFound,
                    });
                }
                let members = Self::members_of(&mut tx, app_id, id).await?;
                for table in ["channel_messages", "channel_members"] {
                    sqlx::query(&format!("delete from {table} where app_id = $1 and channel_id = $2"))
                        .bind(app_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                let event = $crate::store::Event::ChannelDeleted { channel: id };
                self.commit_for(tx, app_id, &members, &event, at).await?;
                Ok(Deleted::Done)
            }

            async fn add_channel_member(
                &self,
                app_id: uuid::Uuid,
                channel_id: uuid::Uuid,
                user_id: &str,
                at: $crate::store::Timestamp,
                max_members: usize,
            ) -> $crate::store::StoreResult<$crate::store::Joined> {
                use $crate::store::Joined;
                let mut tx = self.begin().await?;
                if !Self::lock_live_channel(&mut tx, app_id, channel_id).await? {
                    return Ok(Joined::NotFound);
                }
                let (members, already): (i64, i64) = sqlx::query_as(
                    "select count(*), coalesce(sum(case when user_id = $3 then 1 else 0 end), 0)
                     from channel_members where app_id = $1 and channel_id = $2",
                )
                .bind(app_id)
                .bind(channel_id)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
                if already > 0 {
                    return Ok(Joined::AlreadyMember);
                }
                if usize::try_from(members).unwrap_or(usize::MAX) >= max_members {
                    return Ok(Joined::Full);
                }
                sqlx::query(
                    "insert into channel_members (app_id, channel_id, user_id, joined_at)
                     values ($1, $2, $3, $4)",
                )
                .bind(app_id)
                .bind(channel_id)
                .bind(user_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let members = Self::members_of(&mut tx, app_id, channel_id).await?;
                let event = $crate::store::Event::ChannelMemberAdded {
                    channel: channel_id,
                    user: user_id.to_owned(),
                };
                self.commit_for(tx, app_id, &members, &event, at).await?;
                Ok(Joined::Added)
            }

            async fn remove_channel_member(
                &self,
                app_id: uuid::Uuid,
                channel_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<$crate::store::Left> {
                use $crate::store::Left;
                let mut tx = self.begin().await?;
                if !Self::lock_live_channel(&mut tx, app_id, channel_id).await? {
                    return Ok(Left::NotFound);
                }
                let removed = sqlx::query(
                    "delete from channel_members where app_id = $1 and channel_id = $2 and user_id = $3",
                )
                .bind(app_id)
                .bind(channel_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if removed != 1 {
                    return Ok(Left::NotMember);
                }
                // The remaining members, and the one who left.
                let mut audience = Self::members_of(&mut tx, app_id, channel_id).await?;
                audience.push(user_id.to_owned());
                let event = $crate::store::Event::ChannelMemberRemoved {
                    channel: channel_id,
                    user: user_id.to_owned(),
                };
                self.commit_for(tx, app_id, &audience, &event, $crate::store::Timestamp::now())
                    .await?;
                Ok(Left::Removed)
            }

            async fn send_channel_message(
                &self,
                new: &$crate::store::NewChannelMessage,
            ) -> $crate::store::StoreResult<$crate::store::SendChannelMessage> {
                use $crate::store::SendChannelMessage;
                let mut tx = self.begin().await?;
                let position: Option<i64> = sqlx::query_scalar(
                    "update channels set last_position = last_position + 1
                     where app_id = $1 and id = $2 and deleted_at is null
                     returning last_position",
                )
                .bind(new.app_id)
                .bind(new.channel_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(position) = position else {
                    return Ok(SendChannelMessage::ChannelNotFound);
                };
                let conversation_message: Option<uuid::Uuid> =
                    sqlx::query_scalar("select id from messages where app_id = $1 and id = $2")
                        .bind(new.app_id)
                        .bind(new.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if conversation_message.is_some() {
                    return Ok(SendChannelMessage::IdInUseByConversationMessage);
                }
                let parts: Vec<$crate::store::messaging_sql::StoredPart> = new
                    .parts
                    .iter()
                    .map($crate::store::messaging_sql::StoredPart::from_part)
                    .collect();
                let inserted = sqlx::query(
                    "insert into channel_messages
                        (app_id, id, channel_id, position, sender_user_id, sent_at, parts)
                     values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
                )
                .bind(new.app_id)
                .bind(new.id)
                .bind(new.channel_id)
                .bind(position)
                .bind(&new.sender)
                .bind(new.sent_at)
                .bind(sqlx::types::Json(&parts))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    let existing = Self::load_channel_message(&mut tx, new.app_id, new.id).await?;
                    return existing
                        .map(SendChannelMessage::IdInUse)
                        .ok_or_else(|| $crate::store::StoreError::Conflict("channel_messages".into()));
                }
                Self::reference_contents(&mut tx, new.app_id, new.id, &new.parts, new.sent_at).await?;
                let members = Self::members_of(&mut tx, new.app_id, new.channel_id).await?;
                let event = $crate::store::Event::ChannelMessageCreated { message: new.id };
                self.commit_for(tx, new.app_id, &members, &event, new.sent_at).await?;
                Ok(SendChannelMessage::Sent($crate::store::ChannelMessage {
                    app_id: new.app_id,
                    id: new.id,
                    channel_id: new.channel_id,
                    position,
                    sender: new.sender.clone(),
                    sent_at: new.sent_at,
                    parts: new.parts.clone(),
                }))
            }

            async fn channel_message(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::ChannelMessage>> {
                let mut conn = self.pool.acquire().await?;
                Self::load_channel_message(&mut conn, app_id, id).await
            }

            async fn channel_messages(
                &self,
                app_id: uuid::Uuid,
                channel_id: uuid::Uuid,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::ChannelMessage>> {
                let mut conn = self.pool.acquire().await?;
                let total: i64 = sqlx::query_scalar(
                    "select count(*) from channel_messages where app_id = $1 and channel_id = $2",
                )
                .bind(app_id)
                .bind(channel_id)
                .fetch_one(&mut *conn)
                .await?;
                let before = match page.after {
                    Some(after) => {
                        let position: Option<i64> = sqlx::query_scalar(
                            "select position from channel_messages
                             where app_id = $1 and id = $2 and channel_id = $3",
                        )
                        .bind(app_id)
                        .bind(after)
                        .bind(channel_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                        // An unknown from_id pages past the end rather than restarting.
                        position.unwrap_or(i64::MIN)
                    }
                    None => i64::MAX,
                };
                let rows: Vec<ChannelMessageRow> = sqlx::query_as(&format!(
                    "select {CHANNEL_MESSAGE_COLUMNS} from channel_messages
                     where app_id = $1 and channel_id = $2 and position < $3
                     order by position desc limit $4"
                ))
                .bind(app_id)
                .bind(channel_id)
                .bind(before)
                .bind(i64::from(page.limit))
                .fetch_all(&mut *conn)
                .await?;
                let items = rows.into_iter().map(|row| channel_message_of(app_id, row)).collect();
                Ok($crate::store::Listing { items, total })
            }

            async fn delete_channel_message(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let channel: Option<uuid::Uuid> = sqlx::query_scalar(
                    "delete from channel_messages where app_id = $1 and id = $2 returning channel_id",
                )
                .bind(app_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(channel) = channel else {
                    return Ok(false);
                };
                let members = Self::members_of(&mut tx, app_id, channel).await?;
                let event = $crate::store::Event::ChannelMessageDeleted { message: id, channel };
                self.commit_for(tx, app_id, &members, &event, $crate::store::Timestamp::now())
                    .await?;
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_channel_store;
