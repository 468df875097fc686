//! Integration tests through the real wire: one binary (linked once), a module per concern.

mod announcements;
mod auth;
mod changes;
mod channels;
mod cli;
mod client;
mod client_identities;
mod common;
mod content;
mod content_references;
mod conversations;
mod dedup;
mod fanout_queries;
mod identities;
mod isolation;
mod messages;
mod moto;
mod ops;
mod pipeline;
mod proxy;
mod sessions;
mod users;
mod webhooks;
mod websocket;
