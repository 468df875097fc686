//! Integration tests through the real wire: one binary (linked once), a module per concern.

mod auth;
mod cli;
mod common;
mod dedup;
mod identities;
mod ops;
mod pipeline;
mod users;
