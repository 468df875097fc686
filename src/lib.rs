//! layer-server: a self-hosted, wire-compatible replacement for the Layer messaging platform.

pub mod admin;
pub mod api;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod content;
pub mod error;
pub mod http;
pub mod ids;
pub mod keys;
pub mod patch;
pub mod realtime;
pub mod render;
pub mod secrets;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod version;
pub mod webhooks;
