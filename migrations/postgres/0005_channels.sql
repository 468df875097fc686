-- Channels (Client API 2.0+): named rooms of up to `limits.max_channel_members` members sharing
-- one history. Kept apart from conversations: no receipts, no per-user deletion, no distinctness,
-- no implicit follows; the conversation tables and their queries do not know channels exist.

create table channels (
    app_id uuid not null references apps (id) on delete cascade,
    id uuid not null,
    -- unique per app among live channels (a create with a taken name answers `conflict`)
    name text not null,
    metadata jsonb not null,
    -- the creator may delete the channel, remove other members and delete any of its messages
    created_by text not null,
    created_at timestamptz not null,
    -- highest message position handed out so far (positions grow by 1 per message)
    last_position bigint not null default 0,
    -- bumped by every metadata change (optimistic concurrency for PATCH)
    revision bigint not null default 0,
    -- a deleted channel keeps its row, so that its id stays taken; its name is free again
    deleted_at timestamptz,
    primary key (app_id, id)
);
create unique index channels_name on channels (app_id, name) where deleted_at is null;

create table channel_members (
    app_id uuid not null,
    channel_id uuid not null,
    user_id text not null,
    joined_at timestamptz not null,
    primary key (app_id, channel_id, user_id),
    foreign key (app_id, channel_id) references channels (app_id, id) on delete cascade
);
create index channel_members_user on channel_members (app_id, user_id);

-- Channel messages share the id space of conversation messages (`layer:///messages/<uuid>`): each
-- insert checks the other table. Parts are immutable, so they live in the row as JSON.
create table channel_messages (
    app_id uuid not null,
    id uuid not null,
    channel_id uuid not null,
    position bigint not null,
    sender_user_id text not null,
    sent_at timestamptz not null,
    -- [{id, mime_type, body, encoding, content}]
    parts jsonb not null,
    primary key (app_id, id),
    foreign key (app_id, channel_id) references channels (app_id, id) on delete cascade
);
create unique index channel_messages_position on channel_messages (app_id, channel_id, position);
