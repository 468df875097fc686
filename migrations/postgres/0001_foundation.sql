-- Apps, their Bearer tokens and identity-provider keys; nonces, sessions, identities; the
-- If-None-Match dedup table. Secrets (tokens, nonces, session tokens) are stored as SHA-256 hex.

create table apps (
    id uuid primary key,
    name text not null,
    provider_id uuid not null,
    created_at timestamptz not null
);

create table bearer_tokens (
    id uuid primary key,
    app_id uuid not null references apps (id) on delete cascade,
    token_hash text not null constraint bearer_tokens_token_hash_key unique,
    label text,
    source text not null,
    created_at timestamptz not null,
    revoked_at timestamptz
);
create index bearer_tokens_app_id on bearer_tokens (app_id);

create table provider_keys (
    id uuid primary key,
    app_id uuid not null references apps (id) on delete cascade,
    provider_id uuid not null,
    public_key_pem text not null,
    source text not null,
    created_at timestamptz not null
);
create index provider_keys_app_id on provider_keys (app_id);

create table nonces (
    nonce_hash text primary key,
    expires_at timestamptz not null
);
create index nonces_expires_at on nonces (expires_at);

create table sessions (
    token_hash text primary key,
    app_id uuid not null references apps (id) on delete cascade,
    user_id text not null,
    created_at timestamptz not null,
    expires_at timestamptz not null
);
create index sessions_user on sessions (app_id, user_id);
create index sessions_expires_at on sessions (expires_at);

create table identities (
    app_id uuid not null references apps (id) on delete cascade,
    user_id text not null,
    display_name text,
    avatar_url text,
    first_name text,
    last_name text,
    phone_number text,
    email_address text,
    identity_type text not null default 'user',
    public_key text,
    metadata jsonb not null default '{}',
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (app_id, user_id)
);

create table dedup_entries (
    app_id uuid not null,
    caller text not null,
    tag uuid not null,
    request_hash text not null,
    -- null while the first request is executing
    status integer,
    headers text,
    body bytea,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    primary key (app_id, caller, tag)
);
create index dedup_entries_expires_at on dedup_entries (expires_at);
