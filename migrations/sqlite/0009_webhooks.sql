-- Webhooks (webhooks.md): registrations and their outbox. Outbox rows are written in the
-- transaction of the change that causes them, one per subscribed active webhook, and deleted
-- once delivered (or dropped when the webhook is deactivated). `lease_until` marks a row a
-- worker is delivering: a row whose lease expired (its process died) is claimed again.
-- (SQLite: UUIDs are blobs, times integer milliseconds.)

create table webhooks (
    id blob primary key,
    app_id blob not null references apps (id) on delete cascade,
    version text not null,
    target_url text not null,
    -- JSON array of the subscribed event names (matched with `like '%"<name>"%'`)
    events text not null,
    -- kept as given: it keys the HMAC of every delivery, so it cannot be hashed
    secret text not null,
    -- JSON object echoed into payloads, or null
    config text,
    -- unverified | active | inactive
    status text not null,
    status_reason text,
    created_at integer not null,
    -- a verification GET is owed from this time on (unverified webhooks)
    verify_due_at integer,
    verify_lease_until integer,
    last_attempt_at integer,
    last_success_at integer,
    last_failure_at integer,
    last_error text,
    delivered_count integer not null default 0,
    failed_attempts integer not null default 0
);
create index webhooks_app on webhooks (app_id, status);

create table webhook_outbox (
    seq integer primary key autoincrement,
    webhook_id blob not null references webhooks (id) on delete cascade,
    event_id blob not null,
    event_type text not null,
    -- version-neutral snapshot of the event, rendered for the webhook's version at delivery
    payload text not null,
    created_at integer not null,
    attempts integer not null default 0,
    next_attempt_at integer not null,
    lease_until integer,
    last_error text,
    unique (webhook_id, event_id)
);
create index webhook_outbox_due on webhook_outbox (next_attempt_at);
