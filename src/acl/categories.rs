//! ACL command categories (`@read`, `@string` ...) and key access kinds, as
//! Redis 7 defines them. Each row of the server's command table carries its
//! categories ([`Categories`]) and what it does to its keys ([`KeyAccess`]);
//! this file only names them. The category order is Redis's, which matters:
//! `ACL CAT` lists them in this order and `ACL GETUSER`'s command rules are
//! found by trying categories in this order.

/// A set of ACL categories (one bit per entry of [`CATEGORY_NAMES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Categories(u32);

/// The category names, in Redis's order (bit `i` is `CATEGORY_NAMES[i]`).
pub const CATEGORY_NAMES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

macro_rules! category {
    ($($name:ident = $bit:expr),* $(,)?) => {
        $(
            #[doc = concat!("The `@", stringify!($name), "` category (lower case in Redis).")]
            pub const $name: Categories = Categories(1 << $bit);
        )*
    };
}

impl Categories {
    category! {
        KEYSPACE = 0, READ = 1, WRITE = 2, SET = 3, SORTEDSET = 4, LIST = 5,
        HASH = 6, STRING = 7, BITMAP = 8, HYPERLOGLOG = 9, GEO = 10, STREAM = 11,
        PUBSUB = 12, ADMIN = 13, FAST = 14, SLOW = 15, BLOCKING = 16,
        DANGEROUS = 17, CONNECTION = 18, TRANSACTION = 19, SCRIPTING = 20,
    }

    /// The union of `list` (usable in the static command table).
    pub const fn of(list: &[Categories]) -> Categories {
        let mut bits = 0;
        let mut i = 0;
        while i < list.len() {
            bits |= list[i].0;
            i += 1;
        }
        Categories(bits)
    }

    /// True if every category of `other` is in `self`.
    pub fn contains(self, other: Categories) -> bool {
        self.0 & other.0 == other.0
    }

    /// The category named `name` (without `@`, case-insensitive).
    pub fn by_name(name: &[u8]) -> Option<Categories> {
        CATEGORY_NAMES
            .iter()
            .position(|n| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|i| Categories(1 << i))
    }

    /// The names of the categories in the set, `@`-prefixed, in Redis's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        const AT_NAMES: [&str; 21] = [
            "@keyspace",
            "@read",
            "@write",
            "@set",
            "@sortedset",
            "@list",
            "@hash",
            "@string",
            "@bitmap",
            "@hyperloglog",
            "@geo",
            "@stream",
            "@pubsub",
            "@admin",
            "@fast",
            "@slow",
            "@blocking",
            "@dangerous",
            "@connection",
            "@transaction",
            "@scripting",
        ];
        (0..CATEGORY_NAMES.len())
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(|i| AT_NAMES[i])
    }
}

/// What a command does to one of its keys, for `%R~` / `%W~` patterns: Redis
/// asks for read permission when the key's value is accessed (returned or
/// used), and write permission when the key is inserted, updated or deleted.
/// A command that only looks at a key's metadata (EXISTS, TYPE, STRLEN) needs
/// neither: any key pattern lets it through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KeyAccess(u8);

impl KeyAccess {
    /// Metadata only.
    pub const NONE: KeyAccess = KeyAccess(0);
    /// The value is read.
    pub const R: KeyAccess = KeyAccess(1);
    /// The key is written (inserted, updated or deleted).
    pub const W: KeyAccess = KeyAccess(2);
    /// Read and written.
    pub const RW: KeyAccess = KeyAccess(3);

    /// Both kinds of access.
    pub const fn or(self, other: KeyAccess) -> KeyAccess {
        KeyAccess(self.0 | other.0)
    }

    /// True if every access of `other` is in `self`.
    pub fn contains(self, other: KeyAccess) -> bool {
        self.0 & other.0 == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_redis_order_and_lookup_is_case_insensitive() {
        let c = Categories::of(&[Categories::FAST, Categories::READ, Categories::STRING]);
        assert_eq!(c.names().collect::<Vec<_>>(), ["@read", "@string", "@fast"]);
        assert_eq!(Categories::by_name(b"STRING"), Some(Categories::STRING));
        assert_eq!(Categories::by_name(b"nosuch"), None);
        assert!(c.contains(Categories::READ) && !c.contains(Categories::WRITE));
    }
}
