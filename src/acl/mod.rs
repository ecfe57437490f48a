//! Client authentication and authorisation as Redis 7 has them: users with
//! passwords (SHA-256 hashes), command permissions, key and channel patterns.
//!
//! The users are state of the cluster: they live in the replicated state
//! machine ([`crate::kv::Db`]), changed only by log entries, so every replica
//! holds the same users at the same index. Everything here is synchronous and
//! deterministic (no clock, no I/O): [`Users::apply`] runs inside apply.
//! Deciding who a connection is and checking a command against the user's
//! permissions ([`check`]) are local and read the users as they are.
//!
//! Files: [`categories`] (category and key-access names used by the command
//! table), [`user`] (the user model, `ACL SETUSER` rules, descriptions),
//! [`check`] (the permission check).

pub mod categories;
pub mod check;
pub mod user;

pub use categories::{Categories, KeyAccess, CATEGORY_NAMES};
pub use check::{check, unrestricted_key_access, Denied};
pub use user::{hash_password, AclOp, RuleError, User, Users};
