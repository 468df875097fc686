-- Conversations, their members, messages and parts, per-recipient receipt state, announcements;
-- per-user state (suspension, external badge count), block lists and follows. Everything is
-- scoped by app: ids chosen by clients only need to be unique within their app.
-- (SQLite: UUIDs are blobs, times integer milliseconds, JSON text, booleans integers.)

alter table apps add column session_ttl_secs integer;

create table users (
    app_id blob not null references apps (id) on delete cascade,
    user_id text not null,
    suspended boolean not null default false,
    external_unread_count integer,
    created_at integer not null,
    primary key (app_id, user_id)
);

create table conversations (
    app_id blob not null references apps (id) on delete cascade,
    id blob not null,
    created_at integer not null,
    -- digest of the participant set while the conversation is distinct; null otherwise
    distinct_key text,
    metadata text not null,
    -- highest message position handed out so far (positions grow by 1 per message)
    last_position integer not null default 0,
    -- bumped by every participant or metadata change (optimistic concurrency for PATCH)
    revision integer not null default 0,
    deleted_at integer,
    primary key (app_id, id)
);
create unique index conversations_distinct on conversations (app_id, distinct_key)
    where distinct_key is not null and deleted_at is null;

-- Everyone who is or was a participant. Users removed (or who left) keep their row so that they
-- still see the conversation up to `left_position`.
create table conversation_members (
    app_id blob not null,
    conversation_id blob not null,
    user_id text not null,
    -- order of joining: participants are listed in the order they were added
    seq integer not null,
    is_participant boolean not null,
    joined_at integer not null,
    left_position integer,
    -- delete with mode=my_devices: messages up to here are gone for this user, and the
    -- conversation is hidden until a newer message arrives
    hidden_position integer,
    primary key (app_id, conversation_id, user_id),
    foreign key (app_id, conversation_id) references conversations (app_id, id) on delete cascade
);
create index conversation_members_user on conversation_members (app_id, user_id);

create table messages (
    app_id blob not null,
    id blob not null,
    conversation_id blob not null,
    position integer not null,
    sender_user_id text,
    -- Platform API 1.x system senders (`sender: {"name": ...}`)
    sender_name text,
    sent_at integer not null,
    updated_at integer,
    notification text,
    primary key (app_id, id),
    foreign key (app_id, conversation_id) references conversations (app_id, id) on delete cascade
);
create unique index messages_position on messages (app_id, conversation_id, position);

create table message_parts (
    app_id blob not null,
    message_id blob not null,
    id blob not null,
    seq integer not null,
    mime_type text not null,
    body text,
    encoding text,
    content text,
    updated_at integer,
    primary key (app_id, message_id, id),
    foreign key (app_id, message_id) references messages (app_id, id) on delete cascade
);

-- Receipt state of each user a message was sent to (the sender included, as `read`), and
-- per-user deletion (mode=my_devices).
create table message_recipients (
    app_id blob not null,
    message_id blob not null,
    conversation_id blob not null,
    position integer not null,
    user_id text not null,
    -- 0 sent, 1 delivered, 2 read
    status integer not null,
    hidden boolean not null default false,
    updated_at integer not null,
    primary key (app_id, message_id, user_id),
    foreign key (app_id, message_id) references messages (app_id, id) on delete cascade
);
create index message_recipients_user on message_recipients (app_id, conversation_id, user_id, position);

create table announcements (
    app_id blob not null references apps (id) on delete cascade,
    id blob not null,
    sender_user_id text,
    sender_name text,
    sent_at integer not null,
    -- [{id, mime_type, body, encoding, content}]
    parts text not null,
    notification text,
    primary key (app_id, id)
);

create table announcement_recipients (
    app_id blob not null,
    announcement_id blob not null,
    user_id text not null,
    seq integer not null,
    status integer not null,
    hidden boolean not null default false,
    primary key (app_id, announcement_id, user_id),
    foreign key (app_id, announcement_id) references announcements (app_id, id) on delete cascade
);
create index announcement_recipients_user on announcement_recipients (app_id, user_id);

create table blocks (
    app_id blob not null references apps (id) on delete cascade,
    owner_user_id text not null,
    blocked_user_id text not null,
    created_at integer not null,
    primary key (app_id, owner_user_id, blocked_user_id)
);

-- A follows B: explicitly, or implicitly by sharing a conversation unless A unfollowed B.
create table follows (
    app_id blob not null references apps (id) on delete cascade,
    follower_user_id text not null,
    followed_user_id text not null,
    following boolean not null,
    created_at integer not null,
    primary key (app_id, follower_user_id, followed_user_id)
);
