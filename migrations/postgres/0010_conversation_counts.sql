-- A Conversation's counts as each member sees it (unread_message_count, total_message_count) are
-- read on every delivery of a message; they must not cost a scan of the conversation's history.
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
