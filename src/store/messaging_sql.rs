//! The SQL of `MessagingStore`, one body for both backends (see `sql.rs`). Writes that read
//! first start with an `update` of the conversation or message row: it takes the row lock on
//! Postgres before anything is read, so concurrent writers serialize. (On SQLite every write
//! transaction begins IMMEDIATE, holding the database's write lock from the start.)

macro_rules! impl_messaging_store {
    ($store:ty, $db:ty) => {
        use $crate::store::messaging_sql::{visible_range, StoredPart};

        type Conn = <$db as sqlx::Database>::Connection;

        /// A participant of a send: user, whether they blocked the sender, their identity.
        type AudienceRow = (String, bool, Option<$crate::store::Identity>);

        /// What a send's last statement returns: the outbox rows it wrote (in one row), and a
        /// user with the seq and time of their new change (in each row, or none).
        type Recorded = (Option<i64>, Option<String>, Option<i64>, Option<$crate::store::Timestamp>);

        /// Row of `conversations` in select order.
        type ConversationRow = (
            uuid::Uuid,
            $crate::store::Timestamp,
            Option<String>,
            sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
            i64,
            i64,
            Option<$crate::store::Timestamp>,
        );
        const CONVERSATION_COLUMNS: &str =
            "id, created_at, distinct_key, metadata, last_position, revision, deleted_at";

        type MessageRow = (
            uuid::Uuid,
            uuid::Uuid,
            i64,
            Option<String>,
            Option<String>,
            $crate::store::Timestamp,
            Option<$crate::store::Timestamp>,
            Option<sqlx::types::Json<serde_json::Value>>,
        );
        const MESSAGE_COLUMNS: &str =
            "id, conversation_id, position, sender_user_id, sender_name, sent_at, updated_at, notification";

        type PartRow = (
            uuid::Uuid,
            uuid::Uuid,
            String,
            Option<String>,
            Option<String>,
            Option<sqlx::types::Json<serde_json::Value>>,
            Option<$crate::store::Timestamp>,
        );

        fn sender_of(user: Option<String>, name: Option<String>) -> $crate::store::Sender {
            match (user, name) {
                (Some(user), _) => $crate::store::Sender::User(user),
                (None, name) => $crate::store::Sender::Name(name.unwrap_or_default()),
            }
        }

        fn sender_columns(sender: &$crate::store::Sender) -> (Option<&str>, Option<&str>) {
            match sender {
                $crate::store::Sender::User(user) => (Some(user.as_str()), None),
                $crate::store::Sender::Name(name) => (None, Some(name.as_str())),
            }
        }

        fn part_of(row: PartRow) -> (uuid::Uuid, $crate::store::Part) {
            let (message_id, id, mime_type, body, encoding, content, updated_at) = row;
            (
                message_id,
                $crate::store::Part {
                    id,
                    mime_type,
                    body,
                    encoding,
                    content: content.map(|c| c.0),
                    updated_at,
                },
            )
        }

        impl $store {
            async fn load_conversation(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Conversation>> {
                let row: Option<ConversationRow> = sqlx::query_as(&format!(
                    "select {CONVERSATION_COLUMNS} from conversations where app_id = $1 and id = $2"
                ))
                .bind(app_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                let Some((id, created_at, distinct_key, metadata, last_position, revision, deleted_at)) = row
                else {
                    return Ok(None);
                };
                let participants = sqlx::query_scalar(
                    "select user_id from conversation_members
                     where app_id = $1 and conversation_id = $2 and is_participant
                     order by seq",
                )
                .bind(app_id)
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
                Ok(Some($crate::store::Conversation {
                    app_id,
                    id,
                    created_at,
                    distinct_key,
                    metadata: metadata.0,
                    participants,
                    last_position,
                    revision,
                    deleted_at,
                }))
            }

            async fn load_membership(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::Membership>> {
                let row: Option<(bool, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "select is_participant, left_position, hidden_position from conversation_members
                     where app_id = $1 and conversation_id = $2 and user_id = $3",
                )
                .bind(app_id)
                .bind(conversation_id)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?;
                Ok(row.map(|(is_participant, left_position, hidden_position)| {
                    $crate::store::Membership {
                        is_participant,
                        left_position,
                        hidden_position,
                    }
                }))
            }

            /// Full messages (parts, receipts) for these ids, in the order of `ids`.
            async fn load_messages(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                ids: &[uuid::Uuid],
            ) -> $crate::store::StoreResult<Vec<$crate::store::Message>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {MESSAGE_COLUMNS} from messages where app_id = "
                ));
                query.push_bind(app_id).push(" and id in (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                let rows: Vec<MessageRow> = query.build_query_as().fetch_all(&mut *conn).await?;

                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "select message_id, id, mime_type, body, encoding, content, updated_at
                     from message_parts where app_id = ",
                );
                query.push_bind(app_id).push(" and message_id in (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(") order by seq");
                let parts: Vec<PartRow> = query.build_query_as().fetch_all(&mut *conn).await?;

                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "select r.message_id, r.user_id, r.status from message_recipients r
                     left join conversation_members m on m.app_id = r.app_id
                        and m.conversation_id = r.conversation_id and m.user_id = r.user_id
                     where r.app_id = ",
                );
                query.push_bind(app_id).push(" and r.message_id in (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(") and r.status >= 0 order by m.seq, r.user_id");
                let receipts: Vec<(uuid::Uuid, String, i16)> =
                    query.build_query_as().fetch_all(&mut *conn).await?;

                let mut by_id: std::collections::HashMap<uuid::Uuid, $crate::store::Message> = rows
                    .into_iter()
                    .map(|(id, conversation_id, position, user, name, sent_at, updated_at, notification)| {
                        (
                            id,
                            $crate::store::Message {
                                app_id,
                                id,
                                conversation_id,
                                position,
                                sender: sender_of(user, name),
                                sent_at,
                                updated_at,
                                notification: notification.map(|n| n.0),
                                parts: Vec::new(),
                                recipient_status: Vec::new(),
                            },
                        )
                    })
                    .collect();
                for row in parts {
                    let (message_id, part) = part_of(row);
                    if let Some(message) = by_id.get_mut(&message_id) {
                        message.parts.push(part);
                    }
                }
                for (message_id, user_id, status) in receipts {
                    if let Some(message) = by_id.get_mut(&message_id) {
                        message
                            .recipient_status
                            .push((user_id, $crate::store::ReceiptStatus::from_i16(status)));
                    }
                }
                Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
            }

            /// Users who join a conversation together follow each other; joining one also ends
            /// an earlier explicit unfollow (client-api.md §3.8: "may be implicitly re-followed by
            /// joining another conversation together").
            async fn follow_each_other(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                users: &[String],
                others: &[String],
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<Vec<(String, $crate::store::Event)>> {
                // Each pair once: Postgres refuses an upsert that touches a row twice.
                let pairs: Vec<(&String, &String)> = users
                    .iter()
                    .flat_map(|a| others.iter().map(move |b| (a, b)))
                    .filter(|(a, b)| a != b)
                    .flat_map(|(a, b)| [(a, b), (b, a)])
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                // Pairs already following hear nothing; the others get the followed identity.
                let mut everyone: Vec<&String> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
                everyone.sort();
                everyone.dedup();
                let mut following = std::collections::HashSet::new();
                for chunk in everyone.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "select follower_user_id, followed_user_id from follows where app_id = ",
                    );
                    query.push_bind(app_id).push(" and following and follower_user_id in (");
                    let mut list = query.separated(", ");
                    for user in chunk {
                        list.push_bind(user.as_str());
                    }
                    query.push(")");
                    let rows: Vec<(String, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
                    following.extend(rows);
                }
                let events = pairs
                    .iter()
                    .filter(|(a, b)| !following.contains(&((*a).clone(), (*b).clone())))
                    .map(|(a, b)| ((*a).clone(), $crate::store::Event::IdentityFollowed { user: (*b).clone() }))
                    .collect();
                for chunk in pairs.chunks(1000) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "insert into follows (app_id, follower_user_id, followed_user_id, following, created_at) ",
                    );
                    query.push_values(chunk, |mut row, (a, b)| {
                        row.push_bind(app_id)
                            .push_bind(a.as_str())
                            .push_bind(b.as_str())
                            .push_bind(true)
                            .push_bind(at);
                    });
                    query.push(
                        " on conflict (app_id, follower_user_id, followed_user_id)
                          do update set following = excluded.following",
                    );
                    query.build().execute(&mut *conn).await?;
                }
                Ok(events)
            }

            /// A recipient's receipt status for an announcement they have not deleted.
            async fn announcement_status(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<Option<i16>> {
                Ok(sqlx::query_scalar(
                    "select status from announcement_recipients
                     where app_id = $1 and announcement_id = $2 and user_id = $3 and not hidden",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?)
            }

            async fn insert_parts(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                first_seq: i32,
                parts: &[$crate::store::Part],
            ) -> $crate::store::StoreResult<()> {
                if parts.is_empty() {
                    return Ok(());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "insert into message_parts
                        (app_id, message_id, id, seq, mime_type, body, encoding, content, updated_at) ",
                );
                Self::push_part_values(&mut query, app_id, message_id, first_seq, parts);
                query.build().execute(&mut *conn).await?;
                Ok(())
            }

            /// `values (…), …` of `message_parts` rows, in `insert_parts`' column order.
            fn push_part_values<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                first_seq: i32,
                parts: &'a [$crate::store::Part],
            ) {
                query.push_values(parts.iter().zip(first_seq..), |mut row, (part, seq)| {
                    row.push_bind(app_id)
                        .push_bind(message_id)
                        .push_bind(part.id)
                        .push_bind(seq)
                        .push_bind(part.mime_type.as_str())
                        .push_bind(part.body.as_deref())
                        .push_bind(part.encoding.as_deref())
                        .push_bind(part.content.as_ref().map(sqlx::types::Json))
                        .push_bind(part.updated_at);
                });
            }

            /// The first write of a send: takes the conversation's next position (and its row
            /// lock) if the sender may send (not suspended; with `as_participant`, a
            /// participant who sees the conversation), then inserts the message and its
            /// parts; then reads the audience (`send_audience`). `None` when a check failed or
            /// the id is taken (`send_refused` says which). Two statements on Postgres (the
            /// audience is read after the row lock is taken, so a concurrent membership change
            /// is seen); one call on SQLite, which begins the transaction (`tx.opening()`) and
            /// so takes the write lock before it reads.
            async fn insert_message(
                tx: &mut $crate::store::write_tx::WriteTx<$db>,
                new: &$crate::store::NewMessage,
            ) -> $crate::store::StoreResult<Option<(i64, Vec<AudienceRow>)>> {
                let (sender_user, sender_name) = sender_columns(&new.sender);
                let mut query = sqlx::QueryBuilder::<$db>::new(tx.opening());
                let conn: &mut Conn = tx;
                if Self::WRITABLE_CTES {
                    query.push("with claimed as (");
                }
                query
                    .push(
                        "update conversations
                         set last_position = last_position + 1, message_count = message_count + 1
                         where app_id = ",
                    )
                    .push_bind(new.app_id)
                    .push(" and id = ")
                    .push_bind(new.conversation_id)
                    .push(" and deleted_at is null");
                if let Some(user) = sender_user {
                    query
                        .push(
                            " and not exists (select 1 from users u
                               where u.app_id = conversations.app_id and u.suspended and u.user_id = ",
                        )
                        .push_bind(user)
                        .push(")");
                    if new.as_participant {
                        // `visible_membership`'s rule (see `hidden_for`), on the row's old
                        // last_position.
                        query
                            .push(
                                " and exists (select 1 from conversation_members m
                                   where m.app_id = conversations.app_id
                                     and m.conversation_id = conversations.id and m.is_participant
                                     and (m.hidden_position is null
                                          or (conversations.last_position > m.hidden_position
                                              and (m.left_position is null
                                                   or m.left_position > m.hidden_position)))
                                     and m.user_id = ",
                            )
                            .push_bind(user)
                            .push(")");
                    }
                }
                let notification = new.notification.as_ref().map(sqlx::types::Json);
                if !Self::WRITABLE_CTES {
                    // One call: `changes()` is the row count of the last insert or update
                    // before the statement, so each statement goes on only if the one before
                    // wrote (the select in between counts no rows).
                    let claimed = |query: &mut sqlx::QueryBuilder<'_, $db>| {
                        query
                            .push("(select last_position from conversations where app_id = ")
                            .push_bind(new.app_id)
                            .push(" and id = ")
                            .push_bind(new.conversation_id)
                            .push(")");
                    };
                    // Channel messages share the id space (`layer:///messages/<uuid>`).
                    query.push(
                        "; insert into messages
                            (app_id, id, conversation_id, position, sender_user_id, sender_name, sent_at, notification)
                         select ",
                    );
                    query
                        .push_bind(new.app_id)
                        .push(", ")
                        .push_bind(new.id)
                        .push(", ")
                        .push_bind(new.conversation_id)
                        .push(", ");
                    claimed(&mut query);
                    query
                        .push(", ")
                        .push_bind(sender_user)
                        .push(", ")
                        .push_bind(sender_name)
                        .push(", ")
                        .push_bind(new.sent_at)
                        .push(", ")
                        .push_bind(notification)
                        .push(
                            " where changes() = 1 and not exists
                               (select 1 from channel_messages where app_id = ",
                        )
                        .push_bind(new.app_id)
                        .push(" and id = ")
                        .push_bind(new.id)
                        .push(") on conflict do nothing; select ");
                    claimed(&mut query);
                    query.push(" as claimed_position, ");
                    Self::push_audience(&mut query, new.app_id, new.conversation_id, sender_user);
                    query.push(" and changes() = 1 order by m.seq");
                    if !new.parts.is_empty() {
                        query.push(
                            "; insert into message_parts
                                (app_id, message_id, id, seq, mime_type, body, encoding, content, updated_at)
                             select * from (",
                        );
                        Self::push_part_values(&mut query, new.app_id, new.id, 0, &new.parts);
                        query.push(") where changes() = 1");
                    }
                    let rows = query.build().fetch_all(&mut *conn).await?;
                    let position: i64 = match rows.first() {
                        Some(row) => sqlx::Row::try_get(row, "claimed_position")?,
                        None => {
                            // No participant, or nothing written: the parts insert (a message
                            // has at least one part) says which.
                            let written: i64 = sqlx::query_scalar("select changes()")
                                .fetch_one(&mut *conn)
                                .await?;
                            if written == 0 {
                                return Ok(None);
                            }
                            sqlx::query_scalar(
                                "select last_position from conversations where app_id = $1 and id = $2",
                            )
                            .bind(new.app_id)
                            .bind(new.conversation_id)
                            .fetch_one(&mut *conn)
                            .await?
                        }
                    };
                    return Ok(Some((position, Self::audience_rows(&rows)?)));
                }
                query.push(" returning last_position");
                query
                    .push(
                        "), message as (insert into messages
                            (app_id, id, conversation_id, position, sender_user_id, sender_name, sent_at, notification)
                         select ",
                    )
                    .push_bind(new.app_id)
                    .push(", ")
                    .push_bind(new.id)
                    .push(", ")
                    .push_bind(new.conversation_id)
                    .push(", last_position, ")
                    .push_bind(sender_user)
                    .push(", ")
                    .push_bind(sender_name)
                    .push(", ")
                    .push_bind(new.sent_at)
                    .push(", ")
                    .push_bind(notification)
                    .push(" from claimed where not exists (select 1 from channel_messages where app_id = ")
                    .push_bind(new.app_id)
                    .push(" and id = ")
                    .push_bind(new.id)
                    .push(") on conflict do nothing returning position)");
                if !new.parts.is_empty() {
                    query.push(
                        ", parts as (insert into message_parts
                            (app_id, message_id, id, seq, mime_type, body, encoding, content, updated_at)
                         select v.* from message cross join (",
                    );
                    Self::push_part_values(&mut query, new.app_id, new.id, 0, &new.parts);
                    query.push(") as v)");
                }
                // Each recipient's unread count, here rather than with the receipts, so that a
                // send locks the members' rows before their streams, in the order of every other
                // writer of both (a mark-all-read deadlocked with the other order). A block made
                // between this statement and the audience read would leave one unread too many
                // until the member's next recount.
                query.push(", unread as (");
                Self::push_unread_bump(
                    &mut query,
                    new.app_id,
                    new.conversation_id,
                    sender_user,
                    " and exists (select 1 from message)",
                );
                query.push(") select position from message");
                let position: Option<i64> = query.build_query_scalar().fetch_optional(&mut *conn).await?;
                let Some(position) = position else {
                    return Ok(None);
                };
                let mut query = sqlx::QueryBuilder::<$db>::new("select ");
                Self::push_audience(&mut query, new.app_id, new.conversation_id, sender_user);
                query.push(" order by m.seq");
                let rows = query.build().fetch_all(&mut *conn).await?;
                Ok(Some((position, Self::audience_rows(&rows)?)))
            }

            /// `send_message`; `None` when it was refused for a reason gone by now.
            async fn try_send_message(
                &self,
                new: &$crate::store::NewMessage,
            ) -> $crate::store::StoreResult<Option<$crate::store::SendMessage>> {
                use $crate::store::{ReceiptStatus, SendMessage};
                let (sender_user, _) = sender_columns(&new.sender);
                // Begun with `insert_message`'s statement, committed with `record_message`'s.
                let mut tx = self.begin_lazy().await?;
                // The position, the message and its parts after the checks, and the audience;
                // `None` when a check failed or the id is taken.
                let Some((position, rows)) = Self::insert_message(&mut tx, new).await? else {
                    drop(tx);
                    return self.send_refused(new).await;
                };
                Self::reference_contents(&mut tx, new.app_id, new.id, &new.parts, new.sent_at).await?;
                let mut recipient_status = Vec::with_capacity(rows.len());
                let mut audience = Vec::with_capacity(rows.len());
                let mut blocked_by = Vec::new();
                let mut identities = Vec::with_capacity(rows.len());
                for (user, blocked, identity) in rows {
                    let status = if Some(user.as_str()) == sender_user {
                        ReceiptStatus::Read
                    } else {
                        ReceiptStatus::Sent
                    };
                    if blocked {
                        // Participants who blocked the sender never see the message.
                        blocked_by.push(user.clone());
                    } else {
                        audience.push(user.clone());
                    }
                    recipient_status.push((user, status));
                    identities.extend(identity);
                }
                let message = $crate::store::Message {
                    app_id: new.app_id,
                    id: new.id,
                    conversation_id: new.conversation_id,
                    position,
                    sender: new.sender.clone(),
                    sent_at: new.sent_at,
                    updated_at: None,
                    notification: new.notification.clone(),
                    parts: new.parts.clone(),
                    recipient_status,
                };
                let hook = $crate::store::webhooks::WebhookEvent::message_created(&message);
                let (touched, hooked) =
                    Self::record_message(&mut tx, &message, &blocked_by, &audience, &hook).await?;
                tx.commit().await?;
                let sent = $crate::store::SentMessage {
                    message: message.clone(),
                    identities: identities.clone(),
                };
                self.feed.sent(touched, sent);
                self.webhooks_enqueued(hooked);
                Ok(Some(SendMessage::Sent { message, identities }))
            }

            /// Why `insert_message` wrote nothing, read after its transaction ended, in the
            /// order the checks apply; `None` if nothing explains it any more (a concurrent
            /// change in between: the send may be tried again).
            async fn send_refused(
                &self,
                new: &$crate::store::NewMessage,
            ) -> $crate::store::StoreResult<Option<$crate::store::SendMessage>> {
                use $crate::store::SendMessage;
                let mut conn = self.pool.acquire().await?;
                if let $crate::store::Sender::User(user) = &new.sender {
                    let state = $crate::store::UserStore::user_state(self, new.app_id, user).await?;
                    if state.suspended {
                        return Ok(Some(SendMessage::SenderSuspended));
                    }
                    if new.as_participant {
                        let membership = $crate::store::MessagingStore::visible_membership(
                            self,
                            new.app_id,
                            user,
                            new.conversation_id,
                        )
                        .await?;
                        match membership {
                            None => return Ok(Some(SendMessage::NotVisible)),
                            Some(m) if !m.is_participant => {
                                return Ok(Some(SendMessage::NotParticipant))
                            }
                            Some(_) => {}
                        }
                    }
                }
                let deleted: Option<bool> = sqlx::query_scalar(
                    "select deleted_at is not null from conversations where app_id = $1 and id = $2",
                )
                .bind(new.app_id)
                .bind(new.conversation_id)
                .fetch_optional(&mut *conn)
                .await?;
                match deleted {
                    None => return Ok(Some(SendMessage::ConversationNotFound)),
                    Some(true) => return Ok(Some(SendMessage::ConversationDeleted)),
                    Some(false) => {}
                }
                if let Some(existing) = Self::load_messages(&mut conn, new.app_id, &[new.id]).await?.pop() {
                    return Ok(Some(SendMessage::IdInUse(existing)));
                }
                let channel_message: Option<uuid::Uuid> = sqlx::query_scalar(
                    "select id from channel_messages where app_id = $1 and id = $2",
                )
                .bind(new.app_id)
                .bind(new.id)
                .fetch_optional(&mut *conn)
                .await?;
                Ok(channel_message.map(|_| SendMessage::IdInUseByChannelMessage))
            }

            /// The select list and conditions (without `select`, open for more conditions) of
            /// a conversation's participants: whether each blocked `sender`, and their identity
            /// if they have one (decoded by `audience_rows`).
            fn push_audience<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                app_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
                sender: Option<&'a str>,
            ) {
                query
                    .push(
                        "m.user_id as member_id,
                         exists (select 1 from blocks b where b.app_id = m.app_id
                                 and b.owner_user_id = m.user_id and b.blocked_user_id = ",
                    )
                    .push_bind(sender)
                    .push(concat!(
                        ") as blocked, ",
                        $crate::store::messaging_sql::joined_identity_columns!(),
                        " from conversation_members m
                         left join identities i on i.app_id = m.app_id and i.user_id = m.user_id
                         where m.app_id = "
                    ))
                    .push_bind(app_id)
                    .push(" and m.conversation_id = ")
                    .push_bind(conversation_id)
                    .push(" and m.is_participant");
            }

            fn audience_rows(
                rows: &[<$db as sqlx::Database>::Row],
            ) -> $crate::store::StoreResult<Vec<AudienceRow>> {
                use sqlx::Row;
                rows.iter()
                    .map(|row| {
                        let member: String = row.try_get("member_id")?;
                        let blocked: bool = row.try_get("blocked")?;
                        let identity = match row.try_get::<Option<String>, _>("user_id")? {
                            Some(_) => Some(<$crate::store::Identity as sqlx::FromRow<
                                '_,
                                <$db as sqlx::Database>::Row,
                            >>::from_row(row)?),
                            None => None,
                        };
                        Ok((member, blocked, identity))
                    })
                    .collect()
            }

            /// One more unread message for each participant but the sender and those who blocked
            /// them (`push_audience`'s participants, whose receipts a send leaves unread):
            /// `conversation_members.unread_count`, which every other change of a receipt or of
            /// a member's range counts again (`recount_unread`). `condition`, when given, is
            /// appended to the `where` (Postgres: that the message was inserted).
            fn push_unread_bump<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                app_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
                sender: Option<&'a str>,
                condition: &'static str,
            ) {
                query
                    .push(
                        "update conversation_members set unread_count = unread_count + 1
                         where app_id = ",
                    )
                    .push_bind(app_id)
                    .push(" and conversation_id = ")
                    .push_bind(conversation_id)
                    .push(" and is_participant")
                    .push(condition);
                if let Some(user) = sender {
                    query
                        .push(" and user_id <> ")
                        .push_bind(user)
                        .push(
                            " and not exists (select 1 from blocks b
                               where b.app_id = conversation_members.app_id
                                 and b.owner_user_id = conversation_members.user_id
                                 and b.blocked_user_id = ",
                        )
                        .push_bind(user)
                        .push(")");
                }
            }

            /// Counts again the unread messages of the conversation's members (or of `user`): their
            /// receipts not read yet and not hidden, inside the range they see.
            async fn recount_unread(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
                user: Option<&str>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::messaging_sql::RECOUNT_UNREAD)
                    .bind(app_id)
                    .bind(conversation_id)
                    .bind(user)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// The `message_recipients` insert of a new message: every participant's receipt
            /// row, `hidden` for those who blocked the sender.
            fn push_recipients<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                message: &'a $crate::store::Message,
                blocked_by: &'a [String],
            ) {
                query.push(
                    "insert into message_recipients
                        (app_id, message_id, conversation_id, position, user_id, status, hidden, updated_at) ",
                );
                query.push_values(&message.recipient_status, |mut row, (user, status)| {
                    row.push_bind(message.app_id)
                        .push_bind(message.id)
                        .push_bind(message.conversation_id)
                        .push_bind(message.position)
                        .push_bind(user.as_str())
                        .push_bind(*status as i16)
                        .push_bind(blocked_by.contains(user))
                        .push_bind(message.sent_at);
                });
            }

            /// The rest of a send, after its participants are known: every participant's
            /// receipt row (`hidden` for those who blocked the sender), the Message create in
            /// the audience's change logs, and the webhook events. One statement on Postgres.
            /// Returns the changes appended and the outbox rows written. On SQLite its one
            /// call also commits (`tx.closing()`), unless the conversation is too large for one.
            async fn record_message(
                tx: &mut $crate::store::write_tx::WriteTx<$db>,
                message: &$crate::store::Message,
                blocked_by: &[String],
                audience: &[String],
                hook: &$crate::store::webhooks::WebhookEvent,
            ) -> $crate::store::StoreResult<(Vec<$crate::store::Appended>, u64)> {
                let (app_id, now) = (message.app_id, message.sent_at);
                let (sender, _) = sender_columns(&message.sender);
                let event = $crate::store::Event::MessageCreated { message: message.id };
                // Past this many participants, the general path (it writes in chunks).
                const ONE_STATEMENT_MAX: usize = 1000;
                if message.recipient_status.len() > ONE_STATEMENT_MAX {
                    let conn: &mut Conn = tx;
                    if !message.recipient_status.is_empty() {
                        let mut query = sqlx::QueryBuilder::<$db>::new("");
                        Self::push_recipients(&mut query, message, blocked_by);
                        query.build().execute(&mut *conn).await?;
                    }
                    // Postgres counted them in `insert_message`.
                    if !Self::WRITABLE_CTES {
                        let mut query = sqlx::QueryBuilder::<$db>::new("");
                        Self::push_unread_bump(&mut query, app_id, message.conversation_id, sender, "");
                        query.build().execute(&mut *conn).await?;
                    }
                    let touched = Self::record_for(&mut *conn, app_id, audience, &event, now).await?;
                    let hooked = Self::enqueue_webhook(&mut *conn, app_id, hook, now).await?;
                    return Ok((touched, hooked));
                }
                let mut touched = audience.to_vec();
                // Sorted, as `record` locks users' streams, so concurrent writers lock them
                // in the same order.
                touched.sort();
                // One new change per user.
                let heads: Vec<(String, i64)> = touched.iter().map(|u| (u.clone(), 1)).collect();
                // Serialising this plain enum cannot fail.
                let json = serde_json::to_string(&event).unwrap_or_default();
                if !Self::WRITABLE_CTES {
                    // SQLite: the same statements in one call (its write lock is held for the
                    // whole transaction, so each user's stream gained exactly this change).
                    let mut query = sqlx::QueryBuilder::<$db>::new("");
                    if !message.recipient_status.is_empty() {
                        Self::push_recipients(&mut query, message, blocked_by);
                        query.push("; ");
                    }
                    // Under SQLite's write lock the participants and blocks are those the audience
                    // was read with (Postgres counted them in `insert_message`).
                    Self::push_unread_bump(&mut query, app_id, message.conversation_id, sender, "");
                    query.push("; ");
                    if !touched.is_empty() {
                        Self::push_stream_heads(&mut query, app_id, &heads, now);
                        query
                            .push(
                                "; insert into changes (app_id, user_id, seq, at, event)
                                 select app_id, user_id, last_seq, last_at, ",
                            )
                            .push_bind(json);
                        Self::push_streams_of(&mut query, app_id, &touched);
                        query.push("; ");
                    }
                    Self::push_webhook_insert(&mut query, app_id, hook, now);
                    // The rows the last statement wrote (the outbox rows), then each user's
                    // head: the seq of their one new change.
                    query.push("; select changes(), null, null, null");
                    if !touched.is_empty() {
                        query.push(" union all select null, user_id, last_seq, last_at");
                        Self::push_streams_of(&mut query, app_id, &touched);
                    }
                    query.push(tx.closing());
                    let rows: Vec<Recorded> = query.build_query_as().fetch_all(&mut **tx).await?;
                    let hooked = rows.iter().find_map(|row| row.0).unwrap_or(0);
                    let heads = rows.into_iter().filter_map(|(_, user, seq, at)| Some((user?, seq?, at?)));
                    return Ok((Self::appended(heads, &event), u64::try_from(hooked).unwrap_or(0)));
                }
                let mut query = sqlx::QueryBuilder::<$db>::new("with ");
                if !message.recipient_status.is_empty() {
                    query.push("receipts as (");
                    Self::push_recipients(&mut query, message, blocked_by);
                    query.push("), ");
                }
                if !touched.is_empty() {
                    query.push("heads as (");
                    Self::push_stream_heads(&mut query, app_id, &heads, now);
                    query
                        .push(
                            " returning user_id, last_seq, last_at),
                            logged as (insert into changes (app_id, user_id, seq, at, event)
                              select ",
                        )
                        .push_bind(app_id)
                        .push(", user_id, last_seq, last_at, ")
                        .push_bind(json)
                        .push(" from heads), ");
                }
                Self::push_webhook_cte(&mut query, app_id, hook, now);
                // The outbox rows written, with each user's head: the seq of their new change.
                query.push(" select (select count(*) from webhook_rows), ");
                if touched.is_empty() {
                    query.push("null, null, null");
                } else {
                    query.push("user_id, last_seq, last_at from heads");
                }
                let rows: Vec<Recorded> = query.build_query_as().fetch_all(&mut **tx).await?;
                let hooked = rows.iter().find_map(|row| row.0).unwrap_or(0);
                let heads = rows.into_iter().filter_map(|(_, user, seq, at)| Some((user?, seq?, at?)));
                Ok((Self::appended(heads, &event), u64::try_from(hooked).unwrap_or(0)))
            }

            /// ` from user_streams where …`: the stream heads of `users`.
            fn push_streams_of<'a>(
                query: &mut sqlx::QueryBuilder<'a, $db>,
                app_id: uuid::Uuid,
                users: &'a [String],
            ) {
                query.push(" from user_streams where app_id = ").push_bind(app_id).push(" and user_id in (");
                let mut list = query.separated(", ");
                for user in users {
                    list.push_bind(user.as_str());
                }
                query.push(")");
            }

            /// The changes a send appended: one per user, at their new head.
            fn appended(
                heads: impl Iterator<Item = (String, i64, $crate::store::Timestamp)>,
                event: &$crate::store::Event,
            ) -> Vec<$crate::store::Appended> {
                let event = std::sync::Arc::new(event.clone());
                heads
                    .map(|(user, seq, at)| $crate::store::Appended { user, seq, at, event: event.clone() })
                    .collect()
            }

            /// Stamps the message's `updated_at` (taking the write lock); its conversation, `None`
            /// when it is gone.
            async fn touch_message(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<Option<uuid::Uuid>> {
                Ok(sqlx::query_scalar(
                    "update messages set updated_at = $3 where app_id = $1 and id = $2
                     returning conversation_id",
                )
                .bind(app_id)
                .bind(message_id)
                .bind(at)
                .fetch_optional(&mut *conn)
                .await?)
            }

            /// Records a part change of a message for its conversation's participants (those
            /// who no longer see the message are skipped at delivery), in the caller's
            /// transaction; commits and names them to the feed.
            async fn commit_parts_changed(
                &self,
                mut tx: $crate::store::write_tx::WriteTx<$db>,
                app_id: uuid::Uuid,
                conversation: uuid::Uuid,
                event: $crate::store::Event,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                let participants = Self::participants_of(&mut tx, app_id, conversation).await?;
                self.commit_for(tx, app_id, &participants, &event, at).await
            }

            async fn load_user_conversation(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                user_id: &str,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserConversation>> {
                let Some(conversation) = Self::load_conversation(conn, app_id, id).await? else {
                    return Ok(None);
                };
                if conversation.deleted_at.is_some() {
                    return Ok(None);
                }
                let Some(membership) = Self::load_membership(conn, app_id, id, user_id).await? else {
                    return Ok(None);
                };
                if $crate::store::messaging_sql::hidden_for(&membership, conversation.last_position) {
                    return Ok(None);
                }
                let (low, high) = visible_range(&membership);
                // Total: the messages in range (the conversation's count when the range is
                // the whole conversation) minus those hidden for the user (an index range scan
                // over the hidden rows only); unread: the member's count, kept by the writes
                // (see `recount_unread`).
                let whole = membership.hidden_position.is_none() && membership.left_position.is_none();
                let (total, unread): (i64, i64) = sqlx::query_as(
                    "select
                        (case when $6 then (select c.message_count from conversations c
                                            where c.app_id = $1 and c.id = $2)
                              else (select count(*) from messages m
                                    where m.app_id = $1 and m.conversation_id = $2
                                      and m.position > $4 and m.position <= $5) end)
                        - (select count(*) from message_recipients r
                           where r.app_id = $1 and r.conversation_id = $2 and r.user_id = $3
                             and r.position > $4 and r.position <= $5 and r.hidden),
                        (select m.unread_count from conversation_members m
                         where m.app_id = $1 and m.conversation_id = $2 and m.user_id = $3)",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .bind(low)
                .bind(high)
                .bind(whole)
                .fetch_one(&mut *conn)
                .await?;
                let last_id: Option<uuid::Uuid> = sqlx::query_scalar(
                    "select m.id from messages m
                     where m.app_id = $1 and m.conversation_id = $2
                       and m.position > $4 and m.position <= $5
                       and not exists (select 1 from message_recipients r
                           where r.app_id = m.app_id and r.message_id = m.id and r.user_id = $3 and r.hidden)
                     order by m.position desc limit 1",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .bind(low)
                .bind(high)
                .fetch_optional(&mut *conn)
                .await?;
                let last_message = match last_id {
                    Some(last) => Self::load_messages(conn, app_id, &[last]).await?.pop(),
                    None => None,
                };
                Ok(Some($crate::store::UserConversation {
                    conversation,
                    membership,
                    unread_message_count: unread,
                    total_message_count: total,
                    last_message,
                }))
            }

            async fn load_announcement(
                conn: &mut Conn,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Announcement>> {
                let row: Option<(
                    Option<String>,
                    Option<String>,
                    $crate::store::Timestamp,
                    sqlx::types::Json<Vec<StoredPart>>,
                    Option<sqlx::types::Json<serde_json::Value>>,
                )> = sqlx::query_as(
                    "select sender_user_id, sender_name, sent_at, parts, notification
                     from announcements where app_id = $1 and id = $2",
                )
                .bind(app_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                let Some((user, name, sent_at, parts, notification)) = row else {
                    return Ok(None);
                };
                let recipients = sqlx::query_scalar(
                    "select user_id from announcement_recipients
                     where app_id = $1 and announcement_id = $2 order by seq",
                )
                .bind(app_id)
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
                Ok(Some($crate::store::Announcement {
                    app_id,
                    id,
                    sender: sender_of(user, name),
                    sent_at,
                    notification: notification.map(|n| n.0),
                    parts: parts.0.into_iter().map(StoredPart::into_part).collect(),
                    recipients,
                }))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::MessagingStore for $store {
            async fn create_conversation(
                &self,
                new: &$crate::store::NewConversation,
            ) -> $crate::store::StoreResult<$crate::store::CreateConversation> {
                use $crate::store::CreateConversation;
                let mut tx = self.begin().await?;
                let inserted = sqlx::query(
                    "insert into conversations (app_id, id, created_at, distinct_key, metadata)
                     values ($1, $2, $3, $4, $5) on conflict do nothing",
                )
                .bind(new.app_id)
                .bind(new.id)
                .bind(new.created_at)
                .bind(&new.distinct_key)
                .bind(sqlx::types::Json(&new.metadata))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    // Either the id is taken or a live distinct conversation has these participants.
                    if let Some(existing) = Self::load_conversation(&mut tx, new.app_id, new.id).await? {
                        return Ok(CreateConversation::IdInUse(existing));
                    }
                    let existing: Option<uuid::Uuid> = sqlx::query_scalar(
                        "select id from conversations
                         where app_id = $1 and distinct_key = $2 and deleted_at is null",
                    )
                    .bind(new.app_id)
                    .bind(&new.distinct_key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(id) = existing {
                        if let Some(existing) = Self::load_conversation(&mut tx, new.app_id, id).await? {
                            return Ok(CreateConversation::DistinctExists(existing));
                        }
                    }
                    return Err($crate::store::StoreError::Conflict("conversations".into()));
                }
                let mut follows = Vec::new();
                if !new.participants.is_empty() {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "insert into conversation_members
                            (app_id, conversation_id, user_id, seq, is_participant, joined_at) ",
                    );
                    query.push_values(new.participants.iter().zip(0i64..), |mut row, (user, seq)| {
                        row.push_bind(new.app_id)
                            .push_bind(new.id)
                            .push_bind(user.as_str())
                            .push_bind(seq)
                            .push_bind(true)
                            .push_bind(new.created_at);
                    });
                    query.build().execute(&mut *tx).await?;
                    follows = Self::follow_each_other(
                        &mut tx,
                        new.app_id,
                        &new.participants,
                        &new.participants,
                        new.created_at,
                    )
                    .await?;
                }
                let created = Self::load_conversation(&mut tx, new.app_id, new.id)
                    .await?
                    .ok_or_else(|| $crate::store::StoreError::Conflict("conversations".into()))?;
                let event = $crate::store::Event::ConversationCreated { conversation: new.id };
                // The identities first, so the clients know the participants they now follow.
                let mut events = follows;
                events.extend(new.participants.iter().map(|user| (user.clone(), event.clone())));
                let touched = Self::record(&mut tx, new.app_id, events, new.created_at).await?;
                let hooked = Self::enqueue_webhook(
                    &mut tx,
                    new.app_id,
                    &$crate::store::webhooks::WebhookEvent::new(
                        $crate::store::webhooks::names::CONVERSATION_CREATED,
                        $crate::store::webhooks::Subject::Conversation { conversation: (&created).into(), changes: Vec::new() },
                    ),
                    new.created_at,
                )
                .await?;
                tx.commit().await?;
                self.feed.touched(new.app_id, touched);
                self.webhooks_enqueued(hooked);
                Ok(CreateConversation::Created(created))
            }

            async fn conversation(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Conversation>> {
                let mut conn = self.pool.acquire().await?;
                Self::load_conversation(&mut conn, app_id, id).await
            }

            async fn update_conversation(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                revision: i64,
                change: &$crate::store::ConversationChange,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::Updated> {
                use $crate::store::{ConversationOp, Event, Updated};
                let mut tx = self.begin().await?;
                // Writing first (see the top of this file); the revision bump alone leaves
                // the metadata as it was at `revision`, which the change log diffs against.
                let previous: Option<sqlx::types::Json<serde_json::Map<String, serde_json::Value>>> =
                    sqlx::query_scalar(
                        "update conversations set revision = revision + 1
                         where app_id = $1 and id = $2 and revision = $3 and deleted_at is null
                         returning metadata",
                    )
                    .bind(app_id)
                    .bind(id)
                    .bind(revision)
                    .fetch_optional(&mut *tx)
                    .await?;
                let updated = u64::from(previous.is_some());
                let previous = previous.map(|m| m.0).unwrap_or_default();
                if updated == 1 {
                    sqlx::query("update conversations set metadata = $3, distinct_key = $4 where app_id = $1 and id = $2")
                        .bind(app_id)
                        .bind(id)
                        .bind(sqlx::types::Json(&change.metadata))
                        .bind(&change.distinct_key)
                        .execute(&mut *tx)
                        .await?;
                }
                if updated == 0 {
                    let live: Option<Option<$crate::store::Timestamp>> =
                        sqlx::query_scalar("select deleted_at from conversations where app_id = $1 and id = $2")
                            .bind(app_id)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Ok(match live {
                        Some(None) => Updated::Stale,
                        _ => Updated::NotFound,
                    });
                }
                let members: Vec<(String, bool)> = sqlx::query_as(
                    "select user_id, is_participant from conversation_members
                     where app_id = $1 and conversation_id = $2",
                )
                .bind(app_id)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let wanted: std::collections::HashSet<&str> =
                    change.participants.iter().map(String::as_str).collect();
                for (user, is_participant) in &members {
                    if *is_participant && !wanted.contains(user.as_str()) {
                        sqlx::query(
                            "update conversation_members set is_participant = false,
                                left_position = (select last_position from conversations where app_id = $1 and id = $2)
                             where app_id = $1 and conversation_id = $2 and user_id = $3",
                        )
                        .bind(app_id)
                        .bind(id)
                        .bind(user)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let current: std::collections::HashSet<&str> = members
                    .iter()
                    .filter(|(_, p)| *p)
                    .map(|(u, _)| u.as_str())
                    .collect();
                let added: Vec<String> = change
                    .participants
                    .iter()
                    .filter(|u| !current.contains(u.as_str()))
                    .cloned()
                    .collect();
                // Participants are listed in the order of the new list: a `set` keeps the order
                // it was given, an `add` appends.
                for (seq, user) in (0i64..).zip(&change.participants) {
                    sqlx::query(
                        "insert into conversation_members
                            (app_id, conversation_id, user_id, seq, is_participant, joined_at)
                         values ($1, $2, $3, $4, true, $5)
                         on conflict (app_id, conversation_id, user_id) do update
                            set seq = excluded.seq, is_participant = true, left_position = null",
                    )
                    .bind(app_id)
                    .bind(id)
                    .bind(user)
                    .bind(seq)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                let mut events = Vec::new();
                if !added.is_empty() {
                    events = Self::follow_each_other(&mut tx, app_id, &added, &change.participants, at).await?;
                }
                let removed: Vec<String> = members
                    .iter()
                    .filter(|(u, p)| *p && !wanted.contains(u.as_str()))
                    .map(|(u, _)| u.clone())
                    .collect();
                let mut ops: Vec<ConversationOp> = added
                    .iter()
                    .map(|user| ConversationOp::ParticipantAdded { user: user.clone() })
                    .chain(removed.iter().map(|user| ConversationOp::ParticipantRemoved { user: user.clone() }))
                    .collect();
                ops.extend($crate::store::messaging_sql::metadata_ops(&previous, &change.metadata));
                for user in &change.participants {
                    if added.contains(user) {
                        events.push((user.clone(), Event::ConversationCreated { conversation: id }));
                    } else if !ops.is_empty() {
                        events.push((user.clone(), Event::ConversationUpdated { conversation: id, ops: ops.clone() }));
                    }
                }
                let hooks = $crate::store::webhooks_sql::conversation_update_events(&added, &removed, &ops);
                for user in removed {
                    events.push((
                        user,
                        Event::ConversationDeleted { conversation: id, mode: "my_devices".into(), from_position: None },
                    ));
                }
                let touched = Self::record(&mut tx, app_id, events, at).await?;
                let hooked = Self::hook_conversation(&mut tx, app_id, id, &hooks, at).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                self.webhooks_enqueued(hooked);
                Ok(Updated::Done)
            }

            async fn delete_conversation(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::Deleted> {
                use $crate::store::Deleted;
                let mut tx = self.begin().await?;
                let updated = sqlx::query(
                    "update conversations set deleted_at = $3, distinct_key = null, message_count = 0
                     where app_id = $1 and id = $2 and deleted_at is null",
                )
                .bind(app_id)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    let exists: Option<uuid::Uuid> =
                        sqlx::query_scalar("select id from conversations where app_id = $1 and id = $2")
                            .bind(app_id)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Ok(if exists.is_some() { Deleted::AlreadyDeleted } else { Deleted::NotFound });
                }
                sqlx::query("delete from messages where app_id = $1 and conversation_id = $2")
                    .bind(app_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                // Everyone who still sees it: participants and former ones.
                let members: Vec<String> = sqlx::query_scalar(
                    "select user_id from conversation_members where app_id = $1 and conversation_id = $2",
                )
                .bind(app_id)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let event = $crate::store::Event::ConversationDeleted {
                    conversation: id,
                    mode: "all_participants".into(),
                    from_position: None,
                };
                let touched = Self::record_for(&mut tx, app_id, &members, &event, at).await?;
                let hooks = [($crate::store::webhooks::names::CONVERSATION_DELETED, Vec::new())];
                let hooked = Self::hook_conversation(&mut tx, app_id, id, &hooks, at).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                self.webhooks_enqueued(hooked);
                Ok(Deleted::Done)
            }

            async fn user_conversation(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserConversation>> {
                let mut conn = self.pool.acquire().await?;
                Self::load_user_conversation(&mut conn, app_id, user_id, id).await
            }

            async fn visible_membership(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Membership>> {
                let row: Option<(bool, Option<i64>, Option<i64>, i64)> = sqlx::query_as(
                    "select m.is_participant, m.left_position, m.hidden_position, c.last_position
                     from conversations c
                     join conversation_members m
                       on m.app_id = c.app_id and m.conversation_id = c.id and m.user_id = $3
                     where c.app_id = $1 and c.id = $2 and c.deleted_at is null",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(is_participant, left_position, hidden_position, last_position)| {
                    let membership = $crate::store::Membership {
                        is_participant,
                        left_position,
                        hidden_position,
                    };
                    (!$crate::store::messaging_sql::hidden_for(&membership, last_position))
                        .then_some(membership)
                }))
            }

            async fn user_conversations(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                sort: $crate::store::ConversationSort,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::UserConversation>> {
                let mut conn = self.pool.acquire().await?;
                let key = match sort {
                    $crate::store::ConversationSort::CreatedAt => "c.created_at",
                    $crate::store::ConversationSort::LastMessage => {
                        "coalesce((select m.sent_at from messages m
                                   where m.app_id = c.app_id and m.conversation_id = c.id
                                   order by m.position desc limit 1), c.created_at)"
                    }
                };
                // Every visible conversation's id in list order: the total count and from_id
                // paging both need the whole order anyway.
                let ids: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
                    "select c.id from conversation_members cm
                     join conversations c on c.app_id = cm.app_id and c.id = cm.conversation_id
                     where cm.app_id = $1 and cm.user_id = $2 and c.deleted_at is null
                       and (cm.hidden_position is null or (c.last_position > cm.hidden_position
                            and (cm.left_position is null or cm.left_position > cm.hidden_position)))
                     order by {key} desc, c.id desc"
                ))
                .bind(app_id)
                .bind(user_id)
                .fetch_all(&mut *conn)
                .await?;
                let total = ids.len() as i64;
                let start = match page.after {
                    Some(after) => ids.iter().position(|id| *id == after).map_or(ids.len(), |i| i + 1),
                    None => 0,
                };
                let mut items = Vec::new();
                for id in ids.iter().skip(start).take(page.limit as usize) {
                    if let Some(item) = Self::load_user_conversation(&mut conn, app_id, user_id, *id).await? {
                        items.push(item);
                    }
                }
                Ok($crate::store::Listing { items, total })
            }

            async fn hide_conversation(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                id: uuid::Uuid,
                leave: bool,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                // Leaving changes the participant set: like any such change it costs the
                // conversation its distinctness.
                sqlx::query(
                    "update conversations set revision = revision + 1,
                        distinct_key = case when $3 then null else distinct_key end
                     where app_id = $1 and id = $2 and deleted_at is null",
                )
                .bind(app_id)
                .bind(id)
                .bind(leave)
                .execute(&mut *tx)
                .await?;
                let was_participant: Option<bool> = sqlx::query_scalar(
                    "select is_participant from conversation_members
                     where app_id = $1 and conversation_id = $2 and user_id = $3",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let updated = sqlx::query(
                    "update conversation_members set
                        hidden_position = (select last_position from conversations where app_id = $1 and id = $2),
                        left_position = case when $4 and is_participant
                            then (select last_position from conversations where app_id = $1 and id = $2)
                            else left_position end,
                        is_participant = case when $4 then false else is_participant end
                     where app_id = $1 and conversation_id = $2 and user_id = $3",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .bind(leave)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated != 1 {
                    return Ok(false);
                }
                Self::recount_unread(&mut tx, app_id, id, Some(user_id)).await?;
                use $crate::store::{ConversationOp, Event};
                let mut events = vec![(
                    user_id.to_owned(),
                    Event::ConversationDeleted { conversation: id, mode: "my_devices".into(), from_position: None },
                )];
                let mut hooks = Vec::new();
                if leave && was_participant == Some(true) {
                    let ops = vec![ConversationOp::ParticipantRemoved { user: user_id.to_owned() }];
                    for user in Self::participants_of(&mut tx, app_id, id).await? {
                        events.push((user, Event::ConversationUpdated { conversation: id, ops: ops.clone() }));
                    }
                    hooks = $crate::store::webhooks_sql::conversation_update_events(&[], &[user_id.to_owned()], &ops);
                }
                let touched = Self::record(&mut tx, app_id, events, at).await?;
                let hooked = Self::hook_conversation(&mut tx, app_id, id, &hooks, at).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                self.webhooks_enqueued(hooked);
                Ok(true)
            }

            async fn mark_all_read(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                conversation_id: uuid::Uuid,
                position: Option<i64>,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<Option<i64>> {
                let mut tx = self.begin().await?;
                // Writing first (see the top of this file). On Postgres this locks only the
                // reader's membership row, so sends into the conversation are not held up.
                sqlx::query(
                    "update conversation_members set user_id = user_id
                     where app_id = $1 and conversation_id = $2 and user_id = $3",
                )
                .bind(app_id)
                .bind(conversation_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                let last: Option<i64> = sqlx::query_scalar(
                    "select c.last_position from conversations c
                     join conversation_members cm on cm.app_id = c.app_id and cm.conversation_id = c.id
                     where c.app_id = $1 and c.id = $2 and cm.user_id = $3 and c.deleted_at is null",
                )
                .bind(app_id)
                .bind(conversation_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(last) = last else {
                    return Ok(None);
                };
                let upto = position.map_or(last, |p| p.min(last));
                let marked: Vec<i64> = sqlx::query_scalar(
                    "update message_recipients set status = 2, updated_at = $5
                     where app_id = $1 and conversation_id = $2 and user_id = $3
                       and position <= $4 and status < 2
                     returning position",
                )
                .bind(app_id)
                .bind(conversation_id)
                .bind(user_id)
                .bind(upto)
                .bind(at)
                .fetch_all(&mut *tx)
                .await?;
                if !marked.is_empty() {
                    Self::recount_unread(&mut tx, app_id, conversation_id, Some(user_id)).await?;
                }
                if let Some(from) = marked.iter().min().copied() {
                    use $crate::store::{ConversationOp, Event};
                    let operation = Event::MarkAllRead { conversation: conversation_id, position: upto, user: user_id.to_owned() };
                    let mut events: Vec<(String, Event)> = Self::participants_of(&mut tx, app_id, conversation_id)
                        .await?
                        .into_iter()
                        .map(|user| (user, operation.clone()))
                        .collect();
                    events.push((
                        user_id.to_owned(),
                        Event::ConversationUpdated {
                            conversation: conversation_id,
                            ops: vec![ConversationOp::UnreadMessageCount],
                        },
                    ));
                    let touched = Self::record(&mut tx, app_id, events, at).await?;
                    let receipt = $crate::store::webhooks::WebhookEvent::new(
                        $crate::store::webhooks::names::RANGE_READ,
                        $crate::store::webhooks::Subject::Receipt {
                            conversation: conversation_id,
                            user: user_id.to_owned(),
                            status: "read".into(),
                            from,
                            to: upto,
                            message: None,
                        },
                    );
                    let hooked = Self::enqueue_webhook(&mut tx, app_id, &receipt, at).await?;
                    tx.commit().await?;
                    self.feed.touched(app_id, touched);
                    self.webhooks_enqueued(hooked);
                } else {
                    tx.commit().await?;
                }
                Ok(Some(upto))
            }

            async fn send_message(
                &self,
                new: &$crate::store::NewMessage,
            ) -> $crate::store::StoreResult<$crate::store::SendMessage> {
                // A refusal that nothing explains any more (what stopped it changed in between)
                // is tried again, once.
                for _ in 0..2 {
                    if let Some(done) = self.try_send_message(new).await? {
                        return Ok(done);
                    }
                }
                Err($crate::store::StoreError::Conflict("conversations (concurrent change)".to_owned()))
            }

            async fn message(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Message>> {
                let mut conn = self.pool.acquire().await?;
                Ok(Self::load_messages(&mut conn, app_id, &[id]).await?.pop())
            }

            async fn messages(
                &self,
                app_id: uuid::Uuid,
                conversation_id: uuid::Uuid,
                viewer: Option<(&str, &$crate::store::Membership)>,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::Message>> {
                let mut conn = self.pool.acquire().await?;
                let (user, (low, high)) = match viewer {
                    Some((user, membership)) => (user, visible_range(membership)),
                    None => ("", (i64::MIN, i64::MAX)),
                };
                const VISIBLE: &str = "from messages m
                     where m.app_id = $1 and m.conversation_id = $2
                       and m.position > $3 and m.position <= $4
                       and not exists (select 1 from message_recipients r
                           where r.app_id = m.app_id and r.message_id = m.id and r.user_id = $5 and r.hidden)";
                let total: i64 = sqlx::query_scalar(&format!("select count(*) {VISIBLE}"))
                    .bind(app_id)
                    .bind(conversation_id)
                    .bind(low)
                    .bind(high)
                    .bind(user)
                    .fetch_one(&mut *conn)
                    .await?;
                let before = match page.after {
                    Some(after) => {
                        let position: Option<i64> = sqlx::query_scalar(
                            "select position from messages where app_id = $1 and id = $2 and conversation_id = $3",
                        )
                        .bind(app_id)
                        .bind(after)
                        .bind(conversation_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                        // An unknown from_id pages past the end rather than restarting.
                        position.unwrap_or(i64::MIN)
                    }
                    None => i64::MAX,
                };
                let ids: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
                    "select m.id {VISIBLE} and m.position < $6 order by m.position desc limit $7"
                ))
                .bind(app_id)
                .bind(conversation_id)
                .bind(low)
                .bind(high)
                .bind(user)
                .bind(before)
                .bind(i64::from(page.limit))
                .fetch_all(&mut *conn)
                .await?;
                let items = Self::load_messages(&mut conn, app_id, &ids).await?;
                Ok($crate::store::Listing { items, total })
            }

            async fn message_hidden_for(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                user_id: &str,
            ) -> $crate::store::StoreResult<bool> {
                let hidden: Option<bool> = sqlx::query_scalar(
                    "select hidden from message_recipients where app_id = $1 and message_id = $2 and user_id = $3",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(hidden.unwrap_or(false))
            }

            async fn delete_message(&self, app_id: uuid::Uuid, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                // Snapshotted before it goes (and only when a webhook may want it).
                let hooked = Self::hook_message(
                    &mut tx,
                    app_id,
                    id,
                    $crate::store::webhooks::names::MESSAGE_DELETED,
                    $crate::store::Timestamp::now(),
                )
                .await?;
                let conversation: Option<uuid::Uuid> =
                    sqlx::query_scalar("delete from messages where app_id = $1 and id = $2 returning conversation_id")
                        .bind(app_id)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(conversation) = conversation else {
                    return Ok(false);
                };
                sqlx::query(
                    "update conversations set message_count = message_count - 1
                     where app_id = $1 and id = $2",
                )
                .bind(app_id)
                .bind(conversation)
                .execute(&mut *tx)
                .await?;
                Self::recount_unread(&mut tx, app_id, conversation, None).await?;
                let participants = Self::participants_of(&mut tx, app_id, conversation).await?;
                let event = $crate::store::Event::MessageDeleted {
                    message: id,
                    mode: "all_participants".into(),
                    conversation: Some(conversation),
                };
                let touched =
                    Self::record_for(&mut tx, app_id, &participants, &event, $crate::store::Timestamp::now()).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                self.webhooks_enqueued(hooked);
                Ok(true)
            }

            async fn hide_message(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                user_id: &str,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                // Users added after the message was sent have no receipt row yet: one is made,
                // marked read so that it never counts as unread.
                let mut tx = self.begin().await?;
                let conversation: Option<uuid::Uuid> = sqlx::query_scalar(
                    "insert into message_recipients
                        (app_id, message_id, conversation_id, position, user_id, status, hidden, updated_at)
                     select app_id, id, conversation_id, position, $3, 2, true, $4
                     from messages where app_id = $1 and id = $2
                     on conflict (app_id, message_id, user_id) do update set hidden = true, updated_at = $4
                     returning conversation_id",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(conversation) = conversation {
                    Self::recount_unread(&mut tx, app_id, conversation, Some(user_id)).await?;
                }
                let event = $crate::store::Event::MessageDeleted {
                    message: id,
                    mode: "my_devices".into(),
                    conversation,
                };
                let touched = Self::record_for(&mut tx, app_id, &[user_id.to_owned()], &event, at).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                Ok(())
            }

            async fn set_receipt(
                &self,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                user_id: &str,
                status: $crate::store::ReceiptStatus,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let raised: Option<(uuid::Uuid, i64)> = sqlx::query_as(
                    "update message_recipients set status = $4, updated_at = $5
                     where app_id = $1 and message_id = $2 and user_id = $3 and status < $4
                     returning conversation_id, position",
                )
                .bind(app_id)
                .bind(message_id)
                .bind(user_id)
                .bind(status as i16)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((conversation, position)) = raised else {
                    // Not raised: is the user a recipient at all?
                    let exists: Option<i16> = sqlx::query_scalar(
                        "select status from message_recipients where app_id = $1 and message_id = $2 and user_id = $3",
                    )
                    .bind(app_id)
                    .bind(message_id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    return Ok(exists.is_some());
                };
                if status == $crate::store::ReceiptStatus::Read {
                    Self::recount_unread(&mut tx, app_id, conversation, Some(user_id)).await?;
                }
                use $crate::store::{ConversationOp, Event};
                let receipt = Event::MessageReceipt {
                    message: message_id,
                    user: user_id.to_owned(),
                    status: status.as_str().to_owned(),
                };
                let mut events: Vec<(String, Event)> = Self::participants_of(&mut tx, app_id, conversation)
                    .await?
                    .into_iter()
                    .map(|user| (user, receipt.clone()))
                    .collect();
                if status == $crate::store::ReceiptStatus::Read {
                    events.push((
                        user_id.to_owned(),
                        Event::ConversationUpdated { conversation, ops: vec![ConversationOp::UnreadMessageCount] },
                    ));
                }
                let touched = Self::record(&mut tx, app_id, events, at).await?;
                let hook = $crate::store::webhooks::WebhookEvent::receipt(conversation, user_id, status, position, message_id);
                let hooked = Self::enqueue_webhook(&mut tx, app_id, &hook, at).await?;
                tx.commit().await?;
                self.feed.touched(app_id, touched);
                self.webhooks_enqueued(hooked);
                Ok(true)
            }

            async fn add_part(
                &self,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                part: &$crate::store::Part,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                use $crate::store::PartChange;
                let at = part.updated_at.unwrap_or_else($crate::store::Timestamp::now);
                let mut tx = self.begin().await?;
                // (commits only with the part; every early return rolls it back)
                Self::reference_contents(&mut tx, app_id, message_id, std::slice::from_ref(part), at).await?;
                let Some(conversation) = Self::touch_message(&mut tx, app_id, message_id, at).await? else {
                    return Ok(PartChange::MessageNotFound);
                };
                let taken: Option<uuid::Uuid> = sqlx::query_scalar(
                    "select id from message_parts where app_id = $1 and message_id = $2 and id = $3",
                )
                .bind(app_id)
                .bind(message_id)
                .bind(part.id)
                .fetch_optional(&mut *tx)
                .await?;
                if taken.is_some() {
                    return Ok(PartChange::IdInUse);
                }
                let next: i32 = sqlx::query_scalar(
                    "select cast(coalesce(max(seq), -1) + 1 as integer) from message_parts
                     where app_id = $1 and message_id = $2",
                )
                .bind(app_id)
                .bind(message_id)
                .fetch_one(&mut *tx)
                .await?;
                Self::insert_parts(&mut tx, app_id, message_id, next, std::slice::from_ref(part)).await?;
                let hooks = [($crate::store::webhooks::names::PART_CREATED, part.into())];
                let hooked = Self::hook_parts(&mut tx, app_id, message_id, false, &hooks, at).await?;
                let event = $crate::store::Event::MessagePartsChanged {
                    message: message_id,
                    added: vec![part.id],
                    updated: Vec::new(),
                    removed: Vec::new(),
                };
                self.commit_parts_changed(tx, app_id, conversation, event, at).await?;
                self.webhooks_enqueued(hooked);
                Ok(PartChange::Done)
            }

            async fn update_part(
                &self,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                part: &$crate::store::Part,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                use $crate::store::PartChange;
                let at = part.updated_at.unwrap_or_else($crate::store::Timestamp::now);
                let mut tx = self.begin().await?;
                // (commits only with the update; every early return rolls it back)
                Self::reference_contents(&mut tx, app_id, message_id, std::slice::from_ref(part), at).await?;
                let Some(conversation) = Self::touch_message(&mut tx, app_id, message_id, at).await? else {
                    return Ok(PartChange::MessageNotFound);
                };
                let updated = sqlx::query(
                    "update message_parts set mime_type = $4, body = $5, encoding = $6, content = $7, updated_at = $8
                     where app_id = $1 and message_id = $2 and id = $3",
                )
                .bind(app_id)
                .bind(message_id)
                .bind(part.id)
                .bind(&part.mime_type)
                .bind(&part.body)
                .bind(&part.encoding)
                .bind(part.content.as_ref().map(sqlx::types::Json))
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Ok(PartChange::PartNotFound);
                }
                let mut changed: $crate::store::webhooks::PartSnapshot = part.into();
                changed.updated_at = Some(at.millis());
                let hooks = [($crate::store::webhooks::names::PART_UPDATED, changed)];
                let hooked = Self::hook_parts(&mut tx, app_id, message_id, false, &hooks, at).await?;
                let event = $crate::store::Event::MessagePartsChanged {
                    message: message_id,
                    added: Vec::new(),
                    updated: vec![part.id],
                    removed: Vec::new(),
                };
                self.commit_parts_changed(tx, app_id, conversation, event, at).await?;
                self.webhooks_enqueued(hooked);
                Ok(PartChange::Done)
            }

            async fn replace_parts(
                &self,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                parts: &[$crate::store::Part],
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                use $crate::store::PartChange;
                let mut tx = self.begin().await?;
                // (commits only with the new parts; every early return rolls it back)
                Self::reference_contents(&mut tx, app_id, message_id, parts, at).await?;
                let Some(conversation) = Self::touch_message(&mut tx, app_id, message_id, at).await? else {
                    return Ok(PartChange::MessageNotFound);
                };
                let hooks: Vec<_> = parts
                    .iter()
                    .map(|p| ($crate::store::webhooks::names::PART_CREATED, p.into()))
                    .collect();
                let hooked = Self::hook_parts(&mut tx, app_id, message_id, true, &hooks, at).await?;
                let removed: Vec<uuid::Uuid> = sqlx::query_scalar(
                    "delete from message_parts where app_id = $1 and message_id = $2 returning id",
                )
                .bind(app_id)
                .bind(message_id)
                .fetch_all(&mut *tx)
                .await?;
                Self::insert_parts(&mut tx, app_id, message_id, 0, parts).await?;
                let event = $crate::store::Event::MessagePartsChanged {
                    message: message_id,
                    added: parts.iter().map(|p| p.id).collect(),
                    updated: Vec::new(),
                    removed,
                };
                self.commit_parts_changed(tx, app_id, conversation, event, at).await?;
                self.webhooks_enqueued(hooked);
                Ok(PartChange::Done)
            }

            async fn delete_part(
                &self,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                part_id: uuid::Uuid,
                at: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<$crate::store::PartChange> {
                use $crate::store::PartChange;
                let mut tx = self.begin().await?;
                let Some(conversation) = Self::touch_message(&mut tx, app_id, message_id, at).await? else {
                    return Ok(PartChange::MessageNotFound);
                };
                let deleted = sqlx::query(
                    "delete from message_parts where app_id = $1 and message_id = $2 and id = $3",
                )
                .bind(app_id)
                .bind(message_id)
                .bind(part_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted == 0 {
                    return Ok(PartChange::PartNotFound);
                }
                let hooks = [(
                    $crate::store::webhooks::names::PART_DELETED,
                    $crate::store::webhooks::PartSnapshot::removed(part_id),
                )];
                let hooked = Self::hook_parts(&mut tx, app_id, message_id, false, &hooks, at).await?;
                let event = $crate::store::Event::MessagePartsChanged {
                    message: message_id,
                    added: Vec::new(),
                    updated: Vec::new(),
                    removed: vec![part_id],
                };
                self.commit_parts_changed(tx, app_id, conversation, event, at).await?;
                self.webhooks_enqueued(hooked);
                Ok(PartChange::Done)
            }

            async fn create_announcement(
                &self,
                announcement: &$crate::store::Announcement,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let (user, name) = sender_columns(&announcement.sender);
                let parts: Vec<StoredPart> = announcement.parts.iter().map(StoredPart::from_part).collect();
                let inserted = sqlx::query(
                    "insert into announcements (app_id, id, sender_user_id, sender_name, sent_at, parts, notification)
                     values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
                )
                .bind(announcement.app_id)
                .bind(announcement.id)
                .bind(user)
                .bind(name)
                .bind(announcement.sent_at)
                .bind(sqlx::types::Json(&parts))
                .bind(announcement.notification.as_ref().map(sqlx::types::Json))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(false);
                }
                if !announcement.recipients.is_empty() {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "insert into announcement_recipients (app_id, announcement_id, user_id, seq, status) ",
                    );
                    query.push_values(announcement.recipients.iter().zip(0i32..), |mut row, (user, seq)| {
                        row.push_bind(announcement.app_id)
                            .push_bind(announcement.id)
                            .push_bind(user.as_str())
                            .push_bind(seq)
                            .push_bind($crate::store::ReceiptStatus::Sent as i16);
                    });
                    query.build().execute(&mut *tx).await?;
                }
                Self::reference_contents(
                    &mut tx,
                    announcement.app_id,
                    announcement.id,
                    &announcement.parts,
                    announcement.sent_at,
                )
                .await?;
                let event = $crate::store::Event::AnnouncementCreated { announcement: announcement.id };
                let touched = Self::record_for(
                    &mut tx,
                    announcement.app_id,
                    &announcement.recipients,
                    &event,
                    announcement.sent_at,
                )
                .await?;
                tx.commit().await?;
                self.feed.touched(announcement.app_id, touched);
                Ok(true)
            }

            async fn announcement(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::Announcement>> {
                let mut conn = self.pool.acquire().await?;
                Self::load_announcement(&mut conn, app_id, id).await
            }

            async fn user_announcement(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserAnnouncement>> {
                let mut conn = self.pool.acquire().await?;
                let status = Self::announcement_status(&mut conn, app_id, id, user_id).await?;
                let Some(status) = status else {
                    return Ok(None);
                };
                Ok(Self::load_announcement(&mut conn, app_id, id).await?.map(|announcement| {
                    $crate::store::UserAnnouncement {
                        announcement,
                        status: $crate::store::ReceiptStatus::from_i16(status),
                    }
                }))
            }

            async fn user_announcements(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<$crate::store::Listing<$crate::store::UserAnnouncement>> {
                let mut conn = self.pool.acquire().await?;
                let rows: Vec<(uuid::Uuid, i16)> = sqlx::query_as(
                    "select a.id, r.status from announcement_recipients r
                     join announcements a on a.app_id = r.app_id and a.id = r.announcement_id
                     where r.app_id = $1 and r.user_id = $2 and not r.hidden
                     order by a.sent_at desc, a.id desc",
                )
                .bind(app_id)
                .bind(user_id)
                .fetch_all(&mut *conn)
                .await?;
                let total = rows.len() as i64;
                let start = match page.after {
                    Some(after) => rows.iter().position(|(id, _)| *id == after).map_or(rows.len(), |i| i + 1),
                    None => 0,
                };
                let mut items = Vec::new();
                for (id, status) in rows.into_iter().skip(start).take(page.limit as usize) {
                    if let Some(announcement) = Self::load_announcement(&mut conn, app_id, id).await? {
                        items.push($crate::store::UserAnnouncement {
                            announcement,
                            status: $crate::store::ReceiptStatus::from_i16(status),
                        });
                    }
                }
                Ok($crate::store::Listing { items, total })
            }

            async fn set_announcement_receipt(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                id: uuid::Uuid,
                status: $crate::store::ReceiptStatus,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let raised = sqlx::query(
                    "update announcement_recipients set status = $4
                     where app_id = $1 and announcement_id = $2 and user_id = $3 and not hidden
                        and status < $4",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .bind(status as i16)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if raised == 0 {
                    // Not raised: is the user a recipient at all?
                    let exists = Self::announcement_status(&mut tx, app_id, id, user_id).await?;
                    return Ok(exists.is_some());
                }
                let event = $crate::store::Event::AnnouncementReceipt {
                    announcement: id,
                    status: status.as_str().to_owned(),
                };
                self.commit_for(tx, app_id, &[user_id.to_owned()], &event, $crate::store::Timestamp::now())
                    .await?;
                Ok(true)
            }

            async fn hide_announcement(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let hidden = sqlx::query(
                    "update announcement_recipients set hidden = true
                     where app_id = $1 and announcement_id = $2 and user_id = $3 and not hidden",
                )
                .bind(app_id)
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if hidden != 1 {
                    return Ok(false);
                }
                let event = $crate::store::Event::AnnouncementDeleted { announcement: id };
                self.commit_for(tx, app_id, &[user_id.to_owned()], &event, $crate::store::Timestamp::now())
                    .await?;
                Ok(true)
            }

            async fn identities_of(
                &self,
                app_id: uuid::Uuid,
                user_ids: &[String],
            ) -> $crate::store::StoreResult<Vec<$crate::store::Identity>> {
                if user_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut found = Vec::new();
                for chunk in user_ids.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                        "select ",
                        $crate::store::sql::identity_columns!(),
                        " from identities where app_id = "
                    ));
                    query.push_bind(app_id).push(" and user_id in (");
                    let mut list = query.separated(", ");
                    for user in chunk {
                        list.push_bind(user.as_str());
                    }
                    query.push(")");
                    found.extend(query.build_query_as().fetch_all(&self.pool).await?);
                }
                Ok(found)
            }
        }
    };
}

pub(crate) use impl_messaging_store;

/// `recount_unread`: $1 app, $2 conversation, $3 user (or null: every member). A member's unread
/// messages are their receipts not read yet and not hidden, inside the range they see
/// `(hidden_position, left_position]`; the same rule as 0010_conversation_counts.sql.
pub(crate) const RECOUNT_UNREAD: &str = "
    update conversation_members set unread_count = (
        select count(*) from message_recipients r
        where r.app_id = conversation_members.app_id
          and r.user_id = conversation_members.user_id
          and r.conversation_id = conversation_members.conversation_id
          and r.status < 2 and not r.hidden
          and (conversation_members.hidden_position is null
               or r.position > conversation_members.hidden_position)
          and (conversation_members.left_position is null
               or r.position <= conversation_members.left_position))
    where app_id = $1 and conversation_id = $2 and ($3 is null or user_id = $3)";

/// `identity_columns!()` of the table aliased `i`.
macro_rules! joined_identity_columns {
    () => {
        "i.app_id, i.user_id, i.display_name, i.avatar_url, i.first_name, i.last_name, \
         i.phone_number, i.email_address, i.identity_type, i.public_key, i.metadata, \
         i.created_at, i.updated_at"
    };
}
pub(crate) use joined_identity_columns;

/// The positions a member sees: `(low, high]`.
/// A conversation a member deleted for themself (`my_devices`) stays hidden until a message
/// they may see arrives: none ever does for a member who left (or was removed) at or before
/// the point they deleted it.
pub(crate) fn hidden_for(membership: &super::Membership, last_position: i64) -> bool {
    let last_visible = last_position.min(membership.left_position.unwrap_or(i64::MAX));
    membership
        .hidden_position
        .is_some_and(|hidden| last_visible <= hidden)
}

pub(crate) fn visible_range(membership: &super::Membership) -> (i64, i64) {
    (
        membership.hidden_position.unwrap_or(i64::MIN),
        membership.left_position.unwrap_or(i64::MAX),
    )
}

/// A part as kept inside an announcement's JSON column.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredPart {
    id: uuid::Uuid,
    mime_type: String,
    body: Option<String>,
    encoding: Option<String>,
    content: Option<serde_json::Value>,
}

impl StoredPart {
    pub(crate) fn from_part(part: &super::Part) -> Self {
        StoredPart {
            id: part.id,
            mime_type: part.mime_type.clone(),
            body: part.body.clone(),
            encoding: part.encoding.clone(),
            content: part.content.clone(),
        }
    }

    pub(crate) fn into_part(self) -> super::Part {
        super::Part {
            id: self.id,
            mime_type: self.mime_type,
            body: self.body,
            encoding: self.encoding,
            content: self.content,
            updated_at: None,
        }
    }
}

/// The top-level metadata keys a change set or deleted, in key order.
pub(crate) fn metadata_ops(
    previous: &serde_json::Map<String, serde_json::Value>,
    next: &serde_json::Map<String, serde_json::Value>,
) -> Vec<super::ConversationOp> {
    use super::ConversationOp;
    let deleted = previous
        .keys()
        .filter(|key| !next.contains_key(*key))
        .map(|key| ConversationOp::MetadataDeleted { key: key.clone() });
    let set = next
        .iter()
        .filter(|(key, value)| previous.get(*key) != Some(*value))
        .map(|(key, value)| ConversationOp::MetadataSet {
            key: key.clone(),
            value: value.clone(),
        });
    deleted.chain(set).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn joined_identity_columns_are_the_identity_columns() {
        assert_eq!(
            joined_identity_columns!().replace("i.", ""),
            crate::store::sql::identity_columns!()
        );
    }
}
