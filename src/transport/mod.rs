//! Peer RPC client (being written).
