-- The per-user change log (WebSocket fan-out and Event.replay): every change a user must hear
-- about, in order. `user_streams` hands out each user's sequence numbers; SQLite's single
-- writer makes `seq` order commit order. `at` never goes backwards within a user's stream.
-- Events are version-neutral JSON, rendered at delivery.
-- (SQLite: UUIDs are blobs, times integer milliseconds.)

create table user_streams (
    app_id blob not null references apps (id) on delete cascade,
    user_id text not null,
    last_seq integer not null,
    last_at integer not null,
    primary key (app_id, user_id)
);

create table changes (
    app_id blob not null,
    user_id text not null,
    seq integer not null,
    at integer not null,
    event text not null,
    primary key (app_id, user_id, seq)
);
create index changes_at on changes (at);
