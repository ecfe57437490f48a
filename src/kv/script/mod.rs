//! Lua scripting (issue 14). This branch holds only the libraries; the engine is merged in by the lead.

pub(crate) mod libs;
