-- Apps, their Bearer tokens and identity-provider keys; nonces, sessions, identities; the
-- If-None-Match dedup table. Secrets (tokens, nonces, session tokens) are stored as SHA-256 hex.
-- UUIDs are 16-byte blobs, times integer milliseconds since the Unix epoch (UTC).

create table apps (
    id blob primary key,
    name text not null,
    provider_id blob not null,
    created_at integer not null
);

create table bearer_tokens (
    id blob primary key,
    app_id blob not null references apps (id) on delete cascade,
    token_hash text not null unique,
    label text,
    source text not null,
    created_at integer not null,
    revoked_at integer
);
create index bearer_tokens_app_id on bearer_tokens (app_id);

create table provider_keys (
    id blob primary key,
    app_id blob not null references apps (id) on delete cascade,
    provider_id blob not null,
    public_key_pem text not null,
    source text not null,
    created_at integer not null
);
create index provider_keys_app_id on provider_keys (app_id);

create table nonces (
    nonce_hash text primary key,
    expires_at integer not null
);
create index nonces_expires_at on nonces (expires_at);

create table sessions (
    token_hash text primary key,
    app_id blob not null references apps (id) on delete cascade,
    user_id text not null,
    created_at integer not null,
    expires_at integer not null
);
create index sessions_user on sessions (app_id, user_id);
create index sessions_expires_at on sessions (expires_at);

create table identities (
    app_id blob not null references apps (id) on delete cascade,
    user_id text not null,
    display_name text,
    avatar_url text,
    first_name text,
    last_name text,
    phone_number text,
    email_address text,
    identity_type text not null default 'user',
    public_key text,
    metadata text not null default '{}',
    created_at integer not null,
    updated_at integer not null,
    primary key (app_id, user_id)
);

create table dedup_entries (
    app_id blob not null,
    caller text not null,
    tag blob not null,
    request_hash text not null,
    -- null while the first request is executing
    status integer,
    headers text,
    body blob,
    created_at integer not null,
    expires_at integer not null,
    primary key (app_id, caller, tag)
);
create index dedup_entries_expires_at on dedup_entries (expires_at);
