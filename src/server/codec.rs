//! Request framing: turns client bytes into argument vectors.
//!
//! Requests are parsed here by hand, never by redis-protocol's decoder: that
//! decoder recurses once per nested array (100,000 nested `*1` overflow the stack
//! and abort the process), has no size limits, and restarts a partial frame from
//! its first byte on every read (O(n²) for a big request arriving in pieces).
//!
//! What is accepted is what Redis accepts from clients:
//! - a flat multibulk: `*N\r\n` then N × `$len\r\n<len bytes>\r\n`, with
//!   `N ≤ max_request_args` and `len ≤ max_bulk_len_bytes`; `*0` and negative
//!   counts are empty requests and are skipped;
//! - an inline command: one line (`\n`, optional `\r`) split on whitespace with
//!   `sdssplitargs` quoting rules, at most `max_inline_len_bytes` long.
//!
//! Invariants: the parser never recurses; it keeps its position between calls
//! (each byte is examined a bounded number of times); a declared length over the
//! limit is rejected at its header, before any of its bytes are buffered; every
//! error text is Redis's own, and after an error the connection is closed.

use bytes::{Buf, Bytes, BytesMut};

use crate::config::LimitsConfig;

/// Arguments at least this long are split off the read buffer without a copy;
/// shorter ones are copied so that a stored small value does not pin a whole read
/// buffer in memory.
const ZERO_COPY_MIN_BYTES: usize = 64 * 1024;

/// Appends a command as clients send it (and as this parser reads it): a
/// RESP array of bulk strings. For dkv's own outgoing commands (MIGRATE,
/// `dkv-cli`).
pub fn append_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A framing error: the reply text (without `-`), after which the connection is
/// closed, as Redis does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*` followed by something that is not a count, or a count over the limit.
    #[error("ERR Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$` followed by something that is not a length, or a length over the limit.
    #[error("ERR Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An element of a multibulk request that is not a bulk string (e.g. a nested
    /// array).
    #[error("ERR Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    /// An inline line longer than `max_inline_len_bytes`.
    #[error("ERR Protocol error: too big inline request")]
    TooBigInline,
    /// A `*N` line longer than `max_inline_len_bytes`.
    #[error("ERR Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$len` line longer than `max_inline_len_bytes`.
    #[error("ERR Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline line with an unterminated quote, or a closing quote not followed
    /// by a space.
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// The sizes the parser enforces (from [`LimitsConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest bulk string.
    pub max_bulk_len_bytes: usize,
    /// Most elements in one multibulk request.
    pub max_request_args: usize,
    /// Longest inline line, and longest `*N`/`$len` header line.
    pub max_inline_len_bytes: usize,
}

impl From<&LimitsConfig> for FrameLimits {
    fn from(limits: &LimitsConfig) -> FrameLimits {
        FrameLimits {
            max_bulk_len_bytes: limits.max_bulk_len_bytes,
            max_request_args: limits.max_request_args,
            max_inline_len_bytes: limits.max_inline_len_bytes,
        }
    }
}

impl Default for FrameLimits {
    fn default() -> FrameLimits {
        FrameLimits::from(&LimitsConfig::default())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests.
    Start,
    /// Inside a multibulk, expecting a `$len` header.
    BulkHeader { remaining: usize },
    /// Inside a multibulk, waiting for `len` bytes plus CRLF.
    BulkBody { remaining: usize, len: usize },
}

/// An incremental request parser for one connection.
///
/// Feed it the connection's read buffer; it consumes complete parts and keeps
/// the partial request's arguments, so each byte is looked at a bounded number
/// of times however the request is split across reads.
#[derive(Debug)]
pub struct RequestParser {
    limits: FrameLimits,
    state: State,
    args: Vec<Bytes>,
    /// Bytes of the buffer already searched for a line end (without finding one).
    scanned: usize,
}

impl RequestParser {
    /// A parser in its initial state.
    pub fn new(limits: FrameLimits) -> RequestParser {
        RequestParser {
            limits,
            state: State::Start,
            args: Vec::new(),
            scanned: 0,
        }
    }

    /// Parses the next complete request from `buf`, consuming its bytes.
    ///
    /// Returns `Ok(None)` when more bytes are needed (whatever was complete has
    /// been consumed and remembered). Empty requests (`*0`, blank lines) are
    /// skipped.
    ///
    /// # Errors
    /// A [`ProtocolError`]; the parser must not be used again afterwards.
    pub fn next_request(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match self.state {
                State::Start => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        let Some(line_end) =
                            self.find_line_end(buf, b'\r', ProtocolError::TooBigMultibulkCount)?
                        else {
                            return Ok(None);
                        };
                        let count = parse_decimal(&buf[1..line_end])
                            .ok_or(ProtocolError::InvalidMultibulkLength)?;
                        if count > 0 && count as u64 > self.limits.max_request_args as u64 {
                            return Err(ProtocolError::InvalidMultibulkLength);
                        }
                        self.consume(buf, line_end + 2);
                        if count <= 0 {
                            continue;
                        }
                        let count = count as usize;
                        // Never preallocate what a header merely claims.
                        self.args = Vec::with_capacity(count.min(1024));
                        self.state = State::BulkHeader { remaining: count };
                    } else {
                        let Some(newline) =
                            self.find_line_end(buf, b'\n', ProtocolError::TooBigInline)?
                        else {
                            return Ok(None);
                        };
                        let mut line = &buf[..newline];
                        if let Some(stripped) = line.strip_suffix(b"\r") {
                            line = stripped;
                        }
                        let args = split_inline(line)?;
                        self.consume(buf, newline + 1);
                        if !args.is_empty() {
                            return Ok(Some(args));
                        }
                    }
                }
                State::BulkHeader { remaining } => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedBulk(first));
                    }
                    let Some(line_end) =
                        self.find_line_end(buf, b'\r', ProtocolError::TooBigBulkCount)?
                    else {
                        return Ok(None);
                    };
                    let len =
                        parse_decimal(&buf[1..line_end]).ok_or(ProtocolError::InvalidBulkLength)?;
                    if len < 0 || len as u64 > self.limits.max_bulk_len_bytes as u64 {
                        return Err(ProtocolError::InvalidBulkLength);
                    }
                    self.consume(buf, line_end + 2);
                    self.state = State::BulkBody {
                        remaining,
                        len: len as usize,
                    };
                }
                State::BulkBody { remaining, len } => {
                    if buf.len() < len + 2 {
                        return Ok(None);
                    }
                    let arg = if len >= ZERO_COPY_MIN_BYTES {
                        buf.split_to(len).freeze()
                    } else {
                        let arg = Bytes::copy_from_slice(&buf[..len]);
                        buf.advance(len);
                        arg
                    };
                    // Like Redis, the two bytes after the payload are skipped
                    // without being checked.
                    buf.advance(2);
                    self.args.push(arg);
                    if remaining == 1 {
                        self.state = State::Start;
                        return Ok(Some(std::mem::take(&mut self.args)));
                    }
                    self.state = State::BulkHeader {
                        remaining: remaining - 1,
                    };
                }
            }
        }
    }

    /// How many more bytes the request in progress certainly needs (a hint for
    /// sizing the next read; 0 when unknown).
    pub fn bytes_needed(&self, buf: &BytesMut) -> usize {
        match self.state {
            State::BulkBody { len, .. } => (len + 2).saturating_sub(buf.len()),
            _ => 0,
        }
    }

    /// Bytes of the request in progress already taken out of the buffer (its
    /// complete arguments): with the buffer, the client's query buffer.
    pub fn held_bytes(&self) -> usize {
        self.args.iter().map(Bytes::len).sum()
    }

    /// Finds `delimiter` in `buf` (after the already scanned part). A line ending
    /// in `\r` needs the byte after it too (`\r\n`, skipped as Redis does).
    fn find_line_end(
        &mut self,
        buf: &BytesMut,
        delimiter: u8,
        too_long: ProtocolError,
    ) -> Result<Option<usize>, ProtocolError> {
        let found = buf[self.scanned..]
            .iter()
            .position(|&b| b == delimiter)
            .map(|i| i + self.scanned);
        match found {
            Some(pos) if pos > self.limits.max_inline_len_bytes => Err(too_long),
            Some(pos) if delimiter == b'\r' && pos + 1 >= buf.len() => {
                self.scanned = pos;
                Ok(None)
            }
            Some(pos) => Ok(Some(pos)),
            None if buf.len() > self.limits.max_inline_len_bytes => Err(too_long),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }

    fn consume(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.scanned = 0;
    }
}

/// Parses a decimal the way Redis's `string2ll` does: optional `-`, digits, no
/// `+`, no spaces, no leading zeros, within `i64`.
fn parse_decimal(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline line into arguments with Redis's `sdssplitargs` rules:
/// whitespace separates; `"..."` understands `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a`
/// and `\<char>`; `'...'` understands only `\'`; a closing quote must be
/// followed by whitespace or the end of the line.
///
/// # Errors
/// [`ProtocolError::UnbalancedQuotes`].
pub fn split_inline(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = line.get(i).copied();
            if in_double {
                match c {
                    None => return Err(ProtocolError::UnbalancedQuotes),
                    Some(b'\\') if line.get(i + 1) == Some(&b'x') => {
                        let hex = line
                            .get(i + 2)
                            .and_then(|&h| hex_value(h))
                            .zip(line.get(i + 3).and_then(|&l| hex_value(l)));
                        if let Some((high, low)) = hex {
                            current.push(high * 16 + low);
                            i += 3;
                        } else {
                            // Not a valid escape: Redis keeps the character after
                            // the backslash.
                            current.push(b'x');
                            i += 1;
                        }
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        current.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|&n| !is_space(n)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else if in_single {
                match c {
                    None => return Err(ProtocolError::UnbalancedQuotes),
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|&n| !is_space(n)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(b) if is_space(b) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => current.push(other),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(current));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FrameLimits {
        FrameLimits {
            max_bulk_len_bytes: 512 * 1024 * 1024,
            max_request_args: 1024 * 1024,
            max_inline_len_bytes: 64 * 1024,
        }
    }

    /// Parses everything in `input`, fed at once.
    fn parse_all(input: &[u8]) -> (Vec<Vec<Bytes>>, Option<ProtocolError>, BytesMut) {
        parse_with(limits(), input)
    }

    fn parse_with(
        limits: FrameLimits,
        input: &[u8],
    ) -> (Vec<Vec<Bytes>>, Option<ProtocolError>, BytesMut) {
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::from(input);
        let mut requests = Vec::new();
        loop {
            match parser.next_request(&mut buf) {
                Ok(Some(args)) => requests.push(args),
                Ok(None) => return (requests, None, buf),
                Err(e) => return (requests, Some(e), buf),
            }
        }
    }

    fn args(items: &[&[u8]]) -> Vec<Bytes> {
        items.iter().map(|a| Bytes::copy_from_slice(a)).collect()
    }

    #[test]
    fn complete_multibulk_request_parses() {
        let (reqs, err, rest) = parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n");
        assert_eq!(err, None);
        assert_eq!(reqs, vec![args(&[b"SET", b"k", b"value"])]);
        assert!(rest.is_empty());
    }

    #[test]
    fn request_split_at_every_point_parses_the_same() {
        let input: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nu\r\nPING x\r\n*1\r\n$4\r\nPING\r\n";
        let expected = vec![
            args(&[b"SET", b"k", b"va\r\nu"]),
            args(&[b"PING", b"x"]),
            args(&[b"PING"]),
        ];
        for split in 0..=input.len() {
            let mut parser = RequestParser::new(limits());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&input[..split], &input[split..]] {
                buf.extend_from_slice(part);
                while let Some(req) = parser.next_request(&mut buf).expect("valid input") {
                    got.push(req);
                }
            }
            assert_eq!(got, expected, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn request_fed_byte_by_byte_parses() {
        let input: &[u8] = b"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n";
        let mut parser = RequestParser::new(limits());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            if let Some(req) = parser.next_request(&mut buf).expect("valid input") {
                got.push(req);
            }
        }
        assert_eq!(got, vec![args(&[b"ECHO", b"abc"])]);
    }

    #[test]
    fn pipelined_requests_all_parse_in_order() {
        let mut input = Vec::new();
        for i in 0..100 {
            input.extend_from_slice(
                format!(
                    "*2\r\n$3\r\nGET\r\n${}\r\nk{i}\r\n",
                    1 + i.to_string().len()
                )
                .as_bytes(),
            );
        }
        let (reqs, err, _) = parse_all(&input);
        assert_eq!(err, None);
        assert_eq!(reqs.len(), 100);
        assert_eq!(reqs[42], args(&[b"GET", b"k42"]));
    }

    #[test]
    fn inline_commands_split_on_whitespace() {
        let (reqs, err, _) = parse_all(b"PING\r\nSET  a\tb \r\nGET a\n\r\n\n   \r\nECHO x\r\n");
        assert_eq!(err, None);
        assert_eq!(
            reqs,
            vec![
                args(&[b"PING"]),
                args(&[b"SET", b"a", b"b"]),
                args(&[b"GET", b"a"]),
                args(&[b"ECHO", b"x"]),
            ]
        );
    }

    #[test]
    fn inline_quotes_follow_redis_rules() {
        assert_eq!(
            split_inline(br#"set "a\x41" 'b c' "q\"\n" 'it\'s'"#).expect("balanced"),
            args(&[b"set", b"aA", b"b c", b"q\"\n", b"it's"])
        );
        assert_eq!(
            split_inline(br#"x """#).expect("balanced"),
            args(&[b"x", b""])
        );
        assert_eq!(
            split_inline(b"PING \"abc"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            split_inline(b"PING 'a"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            split_inline(b"PING \"a\"b"),
            Err(ProtocolError::UnbalancedQuotes)
        );
    }

    #[test]
    fn unbalanced_inline_quotes_are_a_protocol_error() {
        let (reqs, err, _) = parse_all(b"PING\r\nPING \"abc\r\n");
        assert_eq!(reqs, vec![args(&[b"PING"])]);
        assert_eq!(err, Some(ProtocolError::UnbalancedQuotes));
        assert_eq!(
            err.expect("error").to_string(),
            "ERR Protocol error: unbalanced quotes in request"
        );
    }

    #[test]
    fn nested_array_is_rejected_without_recursion() {
        let (reqs, err, _) = parse_all(b"*1\r\n*1\r\n$4\r\nPING\r\n");
        assert!(reqs.is_empty());
        let err = err.expect("nested arrays are rejected");
        assert_eq!(err.to_string(), "ERR Protocol error: expected '$', got '*'");
    }

    #[test]
    fn hundred_thousand_nested_arrays_are_rejected_at_the_second_header() {
        let input = b"*1\r\n".repeat(100_000);
        let (reqs, err, rest) = parse_all(&input);
        assert!(reqs.is_empty());
        assert_eq!(err, Some(ProtocolError::ExpectedBulk(b'*')));
        assert_eq!(rest.len(), input.len() - 4);
    }

    #[test]
    fn non_bulk_element_is_rejected() {
        let (_, err, _) = parse_all(b"*1\r\n:4\r\n");
        assert_eq!(
            err.expect("error").to_string(),
            "ERR Protocol error: expected '$', got ':'"
        );
    }

    #[test]
    fn huge_declared_bulk_is_rejected_at_the_header() {
        let (_, err, rest) = parse_all(b"*1\r\n$4294967296\r\n");
        assert_eq!(err, Some(ProtocolError::InvalidBulkLength));
        assert_eq!(&rest[..], b"$4294967296\r\n", "rejected at the header");
        let (_, err, _) = parse_all(b"*1\r\n$536870913\r\n");
        assert_eq!(err, Some(ProtocolError::InvalidBulkLength));
        assert_eq!(
            ProtocolError::InvalidBulkLength.to_string(),
            "ERR Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn bulk_at_the_limit_waits_for_its_bytes() {
        let small = FrameLimits {
            max_bulk_len_bytes: 10,
            ..limits()
        };
        let (reqs, err, _) = parse_with(small, b"*1\r\n$10\r\n0123");
        assert_eq!((reqs.len(), err), (0, None));
        let (_, err, _) = parse_with(small, b"*1\r\n$11\r\n");
        assert_eq!(err, Some(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn bytes_needed_reports_the_rest_of_a_bulk() {
        let mut parser = RequestParser::new(limits());
        let mut buf = BytesMut::from(&b"*1\r\n$100\r\nabc"[..]);
        assert_eq!(parser.next_request(&mut buf), Ok(None));
        assert_eq!(parser.bytes_needed(&buf), 99);
    }

    #[test]
    fn held_bytes_counts_the_complete_arguments_of_a_partial_request() {
        let mut parser = RequestParser::new(limits());
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$10\r\nab"[..]);
        assert_eq!(parser.next_request(&mut buf), Ok(None));
        assert_eq!(parser.held_bytes(), 8);
    }

    #[test]
    fn invalid_and_negative_lengths_are_rejected() {
        for input in [
            &b"*abc\r\n"[..],
            b"*\r\n",
            b"*+1\r\n",
            b"*01\r\n",
            b"*1 \r\n",
            b"*99999999999999999999\r\n",
        ] {
            assert_eq!(
                parse_all(input).1,
                Some(ProtocolError::InvalidMultibulkLength),
                "{input:?}"
            );
        }
        for input in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$abc\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$+3\r\n",
            b"*1\r\n$04\r\n",
            b"*1\r\n$-0\r\n",
        ] {
            assert_eq!(
                parse_all(input).1,
                Some(ProtocolError::InvalidBulkLength),
                "{input:?}"
            );
        }
    }

    #[test]
    fn too_many_args_is_an_invalid_multibulk_length() {
        let small = FrameLimits {
            max_request_args: 2,
            ..limits()
        };
        assert_eq!(
            parse_with(small, b"*3\r\n").1,
            Some(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_with(small, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n").0,
            vec![args(&[b"a", b"b"])]
        );
    }

    #[test]
    fn empty_and_negative_multibulk_counts_are_skipped() {
        let (reqs, err, _) = parse_all(b"*0\r\n*-1\r\n*-5\r\nPING\r\n");
        assert_eq!(err, None);
        assert_eq!(reqs, vec![args(&[b"PING"])]);
    }

    #[test]
    fn oversized_inline_is_rejected() {
        let mut input = b"PING ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 70_000));
        assert_eq!(parse_all(&input).1, Some(ProtocolError::TooBigInline));
        input.extend_from_slice(b"\r\n");
        assert_eq!(parse_all(&input).1, Some(ProtocolError::TooBigInline));
        assert_eq!(
            ProtocolError::TooBigInline.to_string(),
            "ERR Protocol error: too big inline request"
        );
    }

    #[test]
    fn oversized_count_lines_are_rejected() {
        let mut input = b"*".to_vec();
        input.extend(std::iter::repeat_n(b'1', 70_000));
        assert_eq!(
            parse_all(&input).1,
            Some(ProtocolError::TooBigMultibulkCount)
        );
        let mut input = b"*1\r\n$".to_vec();
        input.extend(std::iter::repeat_n(b'1', 70_000));
        assert_eq!(parse_all(&input).1, Some(ProtocolError::TooBigBulkCount));
    }

    #[test]
    fn binary_values_pass_through_unchanged() {
        let value: Vec<u8> = (0..=255u8).collect();
        let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$256\r\n".to_vec();
        input.extend_from_slice(&value);
        input.extend_from_slice(b"\r\n");
        let (reqs, err, _) = parse_all(&input);
        assert_eq!(err, None);
        assert_eq!(&reqs[0][2][..], &value[..]);
    }

    #[test]
    fn large_bulk_is_split_off_without_copy() {
        let len = ZERO_COPY_MIN_BYTES + 5;
        let mut input = format!("*1\r\n${len}\r\n").into_bytes();
        input.extend(std::iter::repeat_n(b'v', len));
        input.extend_from_slice(b"\r\n");
        let (reqs, err, _) = parse_all(&input);
        assert_eq!(err, None);
        assert_eq!(reqs[0][0].len(), len);
    }

    #[test]
    fn many_args_in_small_pieces_parse_in_linear_time() {
        // 200k args fed 7 bytes at a time: a parser that restarts from the
        // first byte would do ~10^11 steps here.
        let n = 200_000;
        let mut input = format!("*{n}\r\n").into_bytes();
        for _ in 0..n {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut parser = RequestParser::new(limits());
        let mut buf = BytesMut::new();
        let mut got = None;
        for chunk in input.chunks(7) {
            buf.extend_from_slice(chunk);
            if let Some(req) = parser.next_request(&mut buf).expect("valid input") {
                got = Some(req);
            }
        }
        assert_eq!(got.map(|r| r.len()), Some(n));
    }

    #[test]
    fn trailing_bytes_after_a_bulk_are_skipped_like_redis() {
        let (reqs, err, _) = parse_all(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n");
        assert_eq!(err, None);
        assert_eq!(reqs, vec![args(&[b"PING"]), args(&[b"PING"])]);
    }

    #[test]
    fn decimals_parse_like_string2ll() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"-12"), Some(-12));
        assert_eq!(parse_decimal(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_decimal(b"9223372036854775808"), None);
        assert_eq!(parse_decimal(b"007"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"-"), None);
    }
}
