//! Short names for building command rows: ACL categories, key access and
//! flags, so each row reads as Redis's `COMMAND INFO` does.

pub use crate::acl::Categories as C;
use crate::acl::KeyAccess;

use super::Flags;

/// `@keyspace`.
pub const KEYSPACE: C = C::KEYSPACE;
/// `@read`.
pub const READ: C = C::READ;
/// `@write`.
pub const WRITE: C = C::WRITE;
/// `@set`.
pub const SET: C = C::SET;
/// `@sortedset`.
pub const SORTEDSET: C = C::SORTEDSET;
/// `@list`.
pub const LIST: C = C::LIST;
/// `@hash`.
pub const HASH: C = C::HASH;
/// `@string`.
pub const STRING: C = C::STRING;
/// `@admin`.
pub const ADMIN: C = C::ADMIN;
/// `@fast`.
pub const FAST: C = C::FAST;
/// `@slow`.
pub const SLOW: C = C::SLOW;
/// `@blocking`.
pub const BLOCKING: C = C::BLOCKING;
/// `@dangerous`.
pub const DANGEROUS: C = C::DANGEROUS;
/// `@connection`.
pub const CONNECTION: C = C::CONNECTION;
/// `@transaction`.
pub const TRANSACTION: C = C::TRANSACTION;

/// The union of `list`.
pub const fn cats(list: &[C]) -> C {
    C::of(list)
}

/// No key access.
pub const KA_NONE: KeyAccess = KeyAccess::NONE;
/// Reads the key's value.
pub const KA_R: KeyAccess = KeyAccess::R;
/// Changes the key.
pub const KA_W: KeyAccess = KeyAccess::W;
/// Both.
pub const KA_RW: KeyAccess = KeyAccess::RW;

/// Flag: O(1) or O(log n) (`fast`).
pub const F_FAST: Flags = Flags::FAST;
/// Flag: refused over maxmemory (`denyoom`).
pub const F_DENYOOM: Flags = Flags::DENYOOM;
/// Flag: fast and denyoom.
pub const F_FAST_DENYOOM: Flags = Flags::FAST.or(Flags::DENYOOM);
/// No flag beyond the row's kind.
pub const F_NONE: Flags = Flags::NONE;
