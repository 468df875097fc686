-- Rich content (client-api.md §3.6, server-api.md §8): parts larger than 2 KB are uploaded on
-- their own and referenced by id. The bytes live in the object store under `<app>/<id>`; a row
-- here says who may reference them and what was uploaded. (SQLite: UUIDs are blobs, times integer
-- milliseconds.)
create table contents (
    app_id blob not null references apps (id) on delete cascade,
    id blob not null,
    -- the user who asked for the upload (Client API); null: the app itself (Platform API)
    owner_user_id text,
    -- the conversation a Platform API upload was requested for
    conversation_id blob,
    content_type text not null,
    -- Upload-Content-Length of the request
    declared_size integer not null,
    -- what the last complete upload stored (null while pending)
    size integer,
    sha256 text,
    created_at integer not null,
    uploaded_at integer,
    primary key (app_id, id)
);
-- upload and download URLs carry only the content id
create unique index contents_id on contents (id);
create index contents_created_at on contents (created_at);

-- Messages (conversation or channel) whose parts reference a content: a referenced content is
-- never garbage-collected, and who may see one of these messages may download it.
create table content_references (
    app_id blob not null,
    content_id blob not null,
    message_id blob not null,
    created_at integer not null,
    primary key (app_id, content_id, message_id),
    foreign key (app_id, content_id) references contents (app_id, id) on delete cascade
);
