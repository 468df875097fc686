-- Webhooks (webhooks.md): registrations and their outbox. Outbox rows are written in the
-- transaction of the change that causes them, one per subscribed active webhook, and deleted
-- once delivered (or dropped when the webhook is deactivated). `lease_until` marks a row a
-- worker is delivering: a row whose lease expired (its node died) is claimed again.

create table webhooks (
    id uuid primary key,
    app_id uuid not null references apps (id) on delete cascade,
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
    created_at timestamptz not null,
    -- a verification GET is owed from this time on (unverified webhooks)
    verify_due_at timestamptz,
    verify_lease_until timestamptz,
    last_attempt_at timestamptz,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_error text,
    delivered_count bigint not null default 0,
    failed_attempts bigint not null default 0
);
create index webhooks_app on webhooks (app_id, status);

create table webhook_outbox (
    seq bigserial primary key,
    webhook_id uuid not null references webhooks (id) on delete cascade,
    event_id uuid not null,
    event_type text not null,
    -- version-neutral snapshot of the event, rendered for the webhook's version at delivery
    payload text not null,
    created_at timestamptz not null,
    attempts integer not null default 0,
    next_attempt_at timestamptz not null,
    lease_until timestamptz,
    last_error text,
    unique (webhook_id, event_id)
);
create index webhook_outbox_due on webhook_outbox (next_attempt_at);
