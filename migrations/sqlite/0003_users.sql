-- The badge counts a user's unread messages across every conversation: index the unread rows by
-- user (the index of 0002 leads with the conversation).
create index message_recipients_unread on message_recipients (app_id, user_id, conversation_id)
    where status < 2;
