//! Listeners: RESP for clients, HTTP for peers and operators (being written).

pub mod http;
