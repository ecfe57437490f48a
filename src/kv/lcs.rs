//! LCS: the longest common subsequence of two strings, with Redis 7.0's
//! options (LEN, IDX, MINMATCHLEN, WITHMATCHLEN), reply shapes (IDX is a
//! map: `matches` and `len`, flat in RESP2) and walk of the table, so the
//! subsequence and the ranges chosen among equal candidates are Redis's.
//!
//! Redis looks both keys up before it parses the options, so every error
//! here depends on the data and is the read's. The dynamic-programming
//! table takes `(len1 + 1) * (len2 + 1)` 32-bit cells; as in Redis, a table
//! above `proto-max-bulk-len` ([`MAX_STRING_BYTES`]) is refused before it
//! is allocated.

use bytes::Bytes;

use super::errors::{NOT_INTEGER, SYNTAX};
use super::table::unchecked_read;
use super::{parse_i64, Ctx, Db, Output, Value, MAX_STRING_BYTES};

/// The string at `key` for LCS: empty when absent, `Err` for another type.
fn lcs_operand<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<&'a [u8], ()> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(&[]),
        Some(Value::Str(s)) => Ok(&s[..]),
        Some(_) => Err(()),
    }
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`.
pub(crate) fn lcs(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let (a, b) = match (
        lcs_operand(db, ctx, &args[1]),
        lcs_operand(db, ctx, &args[2]),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Output::err("ERR The specified keys must contain string values"),
    };
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0u64);
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j][..];
        let more = j + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"idx") {
            idx = true;
        } else if opt.eq_ignore_ascii_case(b"len") {
            len_only = true;
        } else if opt.eq_ignore_ascii_case(b"withmatchlen") {
            with_len = true;
        } else if opt.eq_ignore_ascii_case(b"minmatchlen") && more {
            let Some(n) = parse_i64(&args[j + 1]) else {
                return Output::err(NOT_INTEGER);
            };
            min_len = n.max(0) as u64;
            j += 1;
        } else {
            return Output::err(SYNTAX);
        }
        j += 1;
    }
    if len_only && idx {
        return Output::err("ERR If you want both the length and indexes, please just use IDX.");
    }
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells * 4 > MAX_STRING_BYTES {
        return Output::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let table = Table::new(a, b);
    let total = table.at(a.len(), b.len());
    if len_only {
        return Output::Integer(i64::from(total));
    }
    let (common, matches) = table.walk(a, b, total as usize, min_len, with_len);
    if idx {
        Output::Map(vec![
            (Output::bulk("matches"), Output::Array(matches)),
            (Output::bulk("len"), Output::Integer(i64::from(total))),
        ])
    } else {
        Output::bulk(common)
    }
}

/// `LCS(i, j)`: the length of the LCS of `a[..i]` and `b[..j]`.
struct Table {
    cells: Vec<u32>,
    width: usize,
}

impl Table {
    fn new(a: &[u8], b: &[u8]) -> Table {
        let width = b.len() + 1;
        let mut cells = vec![0u32; (a.len() + 1) * width];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                cells[i * width + j] = if a[i - 1] == b[j - 1] {
                    cells[(i - 1) * width + j - 1] + 1
                } else {
                    cells[(i - 1) * width + j].max(cells[i * width + j - 1])
                };
            }
        }
        Table { cells, width }
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * self.width + j]
    }

    /// Redis's walk back from the end: the subsequence, and the ranges of
    /// contiguous matches (last first) at least `min_len` long.
    fn walk(
        &self,
        a: &[u8],
        b: &[u8],
        total: usize,
        min_len: u64,
        with_len: bool,
    ) -> (Vec<u8>, Vec<Output>) {
        let mut common = vec![0u8; total];
        let mut matches = Vec::new();
        let mut left = total;
        // `(a_start, a_end, b_start, b_end)` of the range being extended.
        let mut range: Option<(usize, usize, usize, usize)> = None;
        let (mut i, mut j) = (a.len(), b.len());
        while i > 0 && j > 0 {
            let mut emit = false;
            if a[i - 1] == b[j - 1] {
                common[left - 1] = a[i - 1];
                range = match range {
                    None => Some((i - 1, i - 1, j - 1, j - 1)),
                    Some((sa, ea, sb, eb)) if sa == i && sb == j => Some((sa - 1, ea, sb - 1, eb)),
                    Some(r) => {
                        emit = true;
                        Some(r)
                    }
                };
                if range.is_some_and(|(sa, _, sb, _)| sa == 0 || sb == 0) {
                    emit = true;
                }
                left -= 1;
                i -= 1;
                j -= 1;
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                emit = range.is_some();
            }
            if emit {
                if let Some((sa, ea, sb, eb)) = range.take() {
                    let len = (ea - sa + 1) as u64;
                    if min_len == 0 || len >= min_len {
                        let pair = |s: usize, e: usize| {
                            Output::Array(vec![
                                Output::Integer(s as i64),
                                Output::Integer(e as i64),
                            ])
                        };
                        let mut item = vec![pair(sa, ea), pair(sb, eb)];
                        if with_len {
                            item.push(Output::Integer(len as i64));
                        }
                        matches.push(Output::Array(item));
                    }
                }
            }
        }
        (common, matches)
    }
}

// ---- definitions -------------------------------------------------------------

use crate::cmd::cat::*;
use crate::cmd::{read, CommandSpec, K12};

/// This group's command definitions (see `crate::cmd`).
pub(crate) static COMMANDS: &[CommandSpec] =
    &[read("lcs", -3, F_NONE, "@string", K12, unchecked_read(lcs))
        .acl(cats(&[READ, STRING, SLOW]), (KA_R, KA_R))
        .doc(
            "Find longest common substring",
            "7.0.0",
            "O(N*M) where N and M are the lengths of s1 and s2, respectively",
        )];

#[cfg(test)]
mod tests;
