-- A Conversation's counts as each member sees it (unread_message_count, total_message_count) are
-- read on every delivery of a message; they must not cost a scan of the conversation's history
-- (nor of the member's unread messages, which grow with it while nobody reads).
--
-- The live messages of a conversation, kept by the send (same row update that takes the
-- position) and by the deletes: a member who sees the whole conversation (the common case)
-- has it as their total, less what is hidden for them.
alter table conversations add column message_count bigint not null default 0;
update conversations set message_count = (
    select count(*) from messages m
    where m.app_id = conversations.app_id and m.conversation_id = conversations.id
);

-- What is hidden for a member (deleted for them, or sent by someone they blocked): rare rows,
-- counted without visiting the others.
create index message_recipients_hidden
    on message_recipients (app_id, conversation_id, user_id, position) where hidden;

-- The unread receipts by user (the badge), by conversation and position (a conversation's unread
-- count): only the rows that count, with the position in the index.
drop index message_recipients_unread;
create index message_recipients_unread
    on message_recipients (app_id, user_id, conversation_id, position)
    where status < 2 and not hidden;

-- Each member's unread messages: their receipts not read yet and not hidden, inside the range they
-- see (hidden_position, left_position]. A send adds one for each recipient it leaves unread;
-- every other change of a receipt or of a member's range counts again (RECOUNT_UNREAD in
-- src/store/messaging_sql.rs, the same rule).
alter table conversation_members add column unread_count bigint not null default 0;
update conversation_members set unread_count = (
    select count(*) from message_recipients r
    where r.app_id = conversation_members.app_id
      and r.user_id = conversation_members.user_id
      and r.conversation_id = conversation_members.conversation_id
      and r.status < 2 and not r.hidden
      and (conversation_members.hidden_position is null
           or r.position > conversation_members.hidden_position)
      and (conversation_members.left_position is null
           or r.position <= conversation_members.left_position)
);
