//! dkv: a Redis-protocol-compatible, Raft-replicated cache server.
//!
//! Module map (see ARCHITECTURE in the README): `raft` is the pure consensus core,
//! `store` the write-ahead log, `kv` the state machine, `server` the RESP and HTTP
//! listeners, `transport` the outbound peer RPC, `node` the driver joining them,
//! `config` the YAML config, `metrics` the metric handles.

pub mod acl;
pub mod cmd;
pub mod config;
pub mod encode;
pub mod kv;
pub mod lincheck;
pub mod metrics;
pub mod node;
pub mod opclient;
pub mod raft;
pub mod server;
#[cfg(test)]
mod sim;
pub mod store;
pub mod tls;
pub mod transport;
