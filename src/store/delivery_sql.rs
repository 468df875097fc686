//! The SQL of `DeliveryStore`, one body for both backends (see `sql.rs`).
//!
//! `delivery_view` is `load_user_conversation` (messaging_sql.rs) without the conversation and
//! the last message's body, in one statement: the same membership row, the same visible range
//! `(hidden_position, left_position]`, the same counts (messages in range minus the user's
//! hidden receipts in range; the user's unhidden receipts in range not read yet) and the same
//! last message (the newest in range without a hidden receipt of the user). Keep them in step.

/// The statement of `delivery_view`: $1 app, $2 conversation, $3 user, $4 message (or null),
/// $5 and $6 the open ends of the visible range (`i64::MIN`, `i64::MAX`).
pub(crate) const DELIVERY_VIEW: &str = "
    with mem as (
        select m.is_participant, m.left_position, m.hidden_position, c.last_position,
               coalesce(m.hidden_position, $5) as low, coalesce(m.left_position, $6) as high
        from conversations c
        join conversation_members m
          on m.app_id = c.app_id and m.conversation_id = c.id and m.user_id = $3
        where c.app_id = $1 and c.id = $2 and c.deleted_at is null
    ),
    last as (
        select x.id from mem, messages x
        where x.app_id = $1 and x.conversation_id = $2
          and x.position > mem.low and x.position <= mem.high
          and not exists (select 1 from message_recipients r
              where r.app_id = x.app_id and r.message_id = x.id and r.user_id = $3 and r.hidden)
        order by x.position desc limit 1
    )
    select mem.is_participant, mem.left_position, mem.hidden_position, mem.last_position,
        (select count(*) from messages x
         where x.app_id = $1 and x.conversation_id = $2
           and x.position > mem.low and x.position <= mem.high)
        - (select count(*) from message_recipients r
           where r.app_id = $1 and r.conversation_id = $2 and r.user_id = $3
             and r.position > mem.low and r.position <= mem.high and r.hidden),
        (select count(*) from message_recipients r
         where r.app_id = $1 and r.conversation_id = $2 and r.user_id = $3
           and r.position > mem.low and r.position <= mem.high
           and r.status < 2 and not r.hidden),
        last.id,
        (select r.status from message_recipients r
         where r.app_id = $1 and r.message_id = last.id and r.user_id = $3),
        (select x.position from messages x where x.app_id = $1 and x.id = $4),
        (select r.status from message_recipients r
         where r.app_id = $1 and r.message_id = $4 and r.user_id = $3),
        (select r.hidden from message_recipients r
         where r.app_id = $1 and r.message_id = $4 and r.user_id = $3)
    from mem left join last on 1 = 1";

macro_rules! impl_delivery_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::DeliveryStore for $store {
            async fn delivery_view(
                &self,
                app_id: uuid::Uuid,
                user_id: &str,
                conversation_id: uuid::Uuid,
                message: Option<uuid::Uuid>,
            ) -> $crate::store::StoreResult<Option<$crate::store::DeliveryView>> {
                use $crate::store::ReceiptStatus;
                type Row = (
                    bool,
                    Option<i64>,
                    Option<i64>,
                    i64,
                    i64,
                    i64,
                    Option<uuid::Uuid>,
                    Option<i16>,
                    Option<i64>,
                    Option<i16>,
                    Option<bool>,
                );
                let row: Option<Row> = sqlx::query_as($crate::store::delivery_sql::DELIVERY_VIEW)
                    .bind(app_id)
                    .bind(conversation_id)
                    .bind(user_id)
                    .bind(message)
                    .bind(i64::MIN)
                    .bind(i64::MAX)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(
                    |(
                        is_participant,
                        left_position,
                        hidden_position,
                        last_position,
                        total,
                        unread,
                        last_id,
                        last_status,
                        message_position,
                        status,
                        hidden,
                    )| {
                        $crate::store::DeliveryView {
                            membership: $crate::store::Membership {
                                is_participant,
                                left_position,
                                hidden_position,
                            },
                            last_position,
                            unread_message_count: unread,
                            total_message_count: total,
                            last_message: last_id
                                .map(|id| (id, last_status.map(ReceiptStatus::from_i16))),
                            message: message_position.map(|position| $crate::store::SeenMessage {
                                position,
                                receipt: status.map(|status| $crate::store::OwnReceipt {
                                    status: ReceiptStatus::from_i16(status),
                                    hidden: hidden.unwrap_or(false),
                                }),
                            }),
                        }
                    },
                ))
            }
        }
    };
}

pub(crate) use impl_delivery_store;
