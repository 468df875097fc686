-- Push tokens the Client API registers (POST /push_tokens), kept for push delivery. A device (and
-- a token) belongs to one user of the app at a time: registering it for another user moves it.
create table push_tokens (
    app_id blob not null references apps (id) on delete cascade,
    device_id text not null,
    user_id text not null,
    token text not null,
    -- 'apns' or 'gcm'
    token_type text not null,
    apns_bundle_id text,
    gcm_sender_id text,
    ios_version text,
    -- per user; the highest is the latest registration (times alone tie within a millisecond)
    registered_seq integer not null,
    registered_at integer not null,
    primary key (app_id, device_id)
);
create index push_tokens_user on push_tokens (app_id, user_id, registered_seq);
create index push_tokens_token on push_tokens (app_id, token);

-- Whether anyone follows a user: a followed user is a user the app has heard of (the Client API
-- serves the identity of every such user). The primary key leads with the follower.
create index follows_followed on follows (app_id, followed_user_id);
