-- The per-user change log (WebSocket fan-out and Event.replay): every change a user must hear
-- about, in order. `user_streams` hands out each user's sequence numbers; its row lock
-- serializes a user's writers, so `seq` order is commit order per user. `at` never goes
-- backwards within a user's stream. Events are version-neutral JSON, rendered at delivery.

create table user_streams (
    app_id uuid not null references apps (id) on delete cascade,
    user_id text not null,
    last_seq bigint not null,
    last_at timestamptz not null,
    primary key (app_id, user_id)
);

create table changes (
    app_id uuid not null,
    user_id text not null,
    seq bigint not null,
    at timestamptz not null,
    event text not null,
    primary key (app_id, user_id, seq)
);
create index changes_at on changes (at);
