//! Replies and their wire encoding, RESP2 or RESP3 per connection.
//!
//! Handlers build a [`Reply`]; the connection encodes it with the protocol the
//! client chose (`HELLO 2|3`). Leaves (strings, integers, nulls, errors) are
//! encoded by redis-protocol's encoders; aggregate headers are written here so
//! that maps keep their order (redis-protocol's RESP3 map is a `HashMap`).
//!
//! Replies are built by our own handlers, never from client input, so their
//! nesting is shallow and the recursive encoder is safe.

use bytes::{BufMut, Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame as Resp2Frame;
use redis_protocol::resp3::types::{BytesFrame as Resp3Frame, VerbatimStringFormat};

/// The reply encoding of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, the default for every new connection.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The number clients send in `HELLO` and see in its `proto` field.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply to one command, independent of the wire protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+text` (status reply).
    Simple(&'static str),
    /// `+text` built at run time (`TYPE`'s reply).
    Status(String),
    /// Nil array: `*-1` in RESP2, `_` in RESP3 (an aborted `EXEC`).
    NilArray,
    /// `-text`: the full error text, code included (`ERR ...`, `WRONGTYPE ...`).
    Error(String),
    /// `:n`.
    Integer(i64),
    /// A bulk (blob) string.
    Bulk(Bytes),
    /// Nil: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// A map: a flat array of keys and values in RESP2, `%` in RESP3.
    Map(Vec<(Reply, Reply)>),
    /// Text such as INFO: a bulk string in RESP2, a verbatim `txt` string in RESP3.
    Verbatim(String),
    /// Pairs: a flat array in RESP2, an array of 2-element arrays in RESP3
    /// (`HRANDFIELD … WITHVALUES`).
    Pairs(Vec<(Reply, Reply)>),
    /// A set: an array in RESP2, `~` in RESP3 (SMEMBERS, SINTER ...).
    Set(Vec<Reply>),
    /// Keyed arrays: an array of `[key, value]` arrays in RESP2, `%` in
    /// RESP3 (XREAD).
    KeyedArrays(Vec<(Reply, Reply)>),
    /// A double printed as Redis prints it: a bulk string in RESP2, `,text`
    /// in RESP3 (sorted-set scores).
    Double(String),
    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
    /// A big number: `(` in RESP3, a bulk string in RESP2.
    BigNumber(String),
    /// A verbatim string with its format (`txt`, `mkd` ...): `=` in RESP3,
    /// a bulk string in RESP2.
    VerbatimAs(String, Bytes),
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Simple("OK");

    /// An error reply from its full text (`ERR ...`).
    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk string copied from text.
    pub fn bulk_str(text: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A bulk string from any bytes.
    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// True for error replies (counted as `result="error"`).
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding of this reply to `buf`.
    pub fn encode(&self, protocol: Protocol, buf: &mut BytesMut) {
        match protocol {
            Protocol::Resp2 => self.encode_resp2(buf),
            Protocol::Resp3 => self.encode_resp3(buf),
        }
    }

    /// This reply's encoding as a new buffer (tests, one-off replies).
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(protocol, &mut buf);
        buf.freeze()
    }

    fn encode_resp2(&self, buf: &mut BytesMut) {
        let frame = match self {
            Reply::Bool(b) => Resp2Frame::Integer(i64::from(*b)),
            Reply::BigNumber(text) => {
                Resp2Frame::BulkString(Bytes::copy_from_slice(text.as_bytes()))
            }
            Reply::VerbatimAs(_, text) => Resp2Frame::BulkString(text.clone()),
            Reply::Simple(s) => Resp2Frame::SimpleString(Bytes::from_static(s.as_bytes())),
            Reply::Status(s) => Resp2Frame::SimpleString(Bytes::copy_from_slice(s.as_bytes())),
            Reply::NilArray => {
                buf.put_slice(b"*-1\r\n");
                return;
            }
            Reply::Error(text) => Resp2Frame::Error(sanitize_error(text).into()),
            Reply::Integer(n) => Resp2Frame::Integer(*n),
            Reply::Bulk(b) => Resp2Frame::BulkString(b.clone()),
            Reply::Null => Resp2Frame::Null,
            Reply::Verbatim(text) | Reply::Double(text) => {
                Resp2Frame::BulkString(Bytes::copy_from_slice(text.as_bytes()))
            }
            Reply::Array(items) | Reply::Set(items) => {
                write_header(buf, b'*', items.len());
                for item in items {
                    item.encode_resp2(buf);
                }
                return;
            }
            Reply::KeyedArrays(pairs) => {
                write_header(buf, b'*', pairs.len());
                for (key, value) in pairs {
                    write_header(buf, b'*', 2);
                    key.encode_resp2(buf);
                    value.encode_resp2(buf);
                }
                return;
            }
            Reply::Map(pairs) | Reply::Pairs(pairs) => {
                write_header(buf, b'*', pairs.len() * 2);
                for (key, value) in pairs {
                    key.encode_resp2(buf);
                    value.encode_resp2(buf);
                }
                return;
            }
        };
        redis_protocol::resp2::encode::extend_encode(buf, &frame, false)
            .expect("encoding into a growable buffer cannot fail");
    }

    fn encode_resp3(&self, buf: &mut BytesMut) {
        let frame = match self {
            Reply::Bool(b) => {
                buf.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                return;
            }
            Reply::BigNumber(text) => {
                buf.put_u8(b'(');
                buf.put_slice(text.as_bytes());
                buf.put_slice(b"\r\n");
                return;
            }
            Reply::VerbatimAs(format, text) => {
                write_header(buf, b'=', text.len() + 4);
                buf.put_slice(format.as_bytes());
                buf.put_u8(b':');
                buf.put_slice(text);
                buf.put_slice(b"\r\n");
                return;
            }
            Reply::Double(text) => {
                buf.put_u8(b',');
                buf.put_slice(text.as_bytes());
                buf.put_slice(b"\r\n");
                return;
            }
            Reply::Simple(s) => Resp3Frame::SimpleString {
                data: Bytes::from_static(s.as_bytes()),
                attributes: None,
            },
            Reply::Status(s) => Resp3Frame::SimpleString {
                data: Bytes::copy_from_slice(s.as_bytes()),
                attributes: None,
            },
            Reply::NilArray => Resp3Frame::Null,
            Reply::Error(text) => Resp3Frame::SimpleError {
                data: sanitize_error(text).into(),
                attributes: None,
            },
            Reply::Integer(n) => Resp3Frame::Number {
                data: *n,
                attributes: None,
            },
            Reply::Bulk(b) => Resp3Frame::BlobString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Null => Resp3Frame::Null,
            Reply::Verbatim(text) => Resp3Frame::VerbatimString {
                data: Bytes::copy_from_slice(text.as_bytes()),
                format: VerbatimStringFormat::Text,
                attributes: None,
            },
            Reply::Array(items) => {
                write_header(buf, b'*', items.len());
                for item in items {
                    item.encode_resp3(buf);
                }
                return;
            }
            Reply::Set(items) => {
                write_header(buf, b'~', items.len());
                for item in items {
                    item.encode_resp3(buf);
                }
                return;
            }
            Reply::Map(pairs) | Reply::KeyedArrays(pairs) => {
                write_header(buf, b'%', pairs.len());
                for (key, value) in pairs {
                    key.encode_resp3(buf);
                    value.encode_resp3(buf);
                }
                return;
            }
            Reply::Pairs(pairs) => {
                write_header(buf, b'*', pairs.len());
                for (key, value) in pairs {
                    write_header(buf, b'*', 2);
                    key.encode_resp3(buf);
                    value.encode_resp3(buf);
                }
                return;
            }
        };
        redis_protocol::resp3::encode::complete::extend_encode(buf, &frame, false)
            .expect("encoding into a growable buffer cannot fail");
    }
}

impl From<crate::kv::Output> for Reply {
    fn from(output: crate::kv::Output) -> Reply {
        use crate::kv::Output;
        match output {
            Output::Ok => Reply::OK,
            Output::Status(s) => match s.as_str() {
                "PONG" => Reply::Simple("PONG"),
                "QUEUED" => Reply::Simple("QUEUED"),
                _ => Reply::Status(s),
            },
            Output::Integer(n) => Reply::Integer(n),
            Output::Bulk(Some(b)) => Reply::Bulk(b),
            Output::Bulk(None) => Reply::Null,
            Output::Array(items) => Reply::Array(items.into_iter().map(Reply::from).collect()),
            Output::NilArray => Reply::NilArray,
            Output::Map(pairs) => Reply::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Reply::from(k), Reply::from(v)))
                    .collect(),
            ),
            Output::Pairs(pairs) => Reply::Pairs(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Reply::from(k), Reply::from(v)))
                    .collect(),
            ),
            Output::KeyedArrays(pairs) => Reply::KeyedArrays(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Reply::from(k), Reply::from(v)))
                    .collect(),
            ),
            Output::Error(text) => Reply::Error(text),
            Output::Set(items) => Reply::Set(items.into_iter().map(Reply::from).collect()),
            Output::Double(text) => Reply::Double(text),
            Output::Bool(b) => Reply::Bool(b),
            Output::BigNumber(text) => Reply::BigNumber(text),
            Output::Verbatim { format, text } => Reply::VerbatimAs(format, text),
        }
    }
}

fn write_header(buf: &mut BytesMut, kind: u8, len: usize) {
    buf.put_u8(kind);
    buf.put_slice(len.to_string().as_bytes());
    buf.put_slice(b"\r\n");
}

/// An error line must not contain CR or LF; Redis replaces them with spaces.
fn sanitize_error(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(reply: &Reply) -> (Bytes, Bytes) {
        (
            reply.to_bytes(Protocol::Resp2),
            reply.to_bytes(Protocol::Resp3),
        )
    }

    #[test]
    fn leaves_encode_like_redis() {
        assert_eq!(both(&Reply::OK).0, &b"+OK\r\n"[..]);
        assert_eq!(both(&Reply::Integer(-3)).1, &b":-3\r\n"[..]);
        assert_eq!(
            both(&Reply::bulk_str("hi")),
            (
                Bytes::from_static(b"$2\r\nhi\r\n"),
                Bytes::from_static(b"$2\r\nhi\r\n")
            )
        );
        assert_eq!(
            both(&Reply::Bulk(Bytes::from_static(b"a\r\n\0b"))).0,
            &b"$5\r\na\r\n\0b\r\n"[..]
        );
    }

    #[test]
    fn null_is_dollar_minus_one_in_resp2_and_underscore_in_resp3() {
        assert_eq!(
            both(&Reply::Null),
            (Bytes::from_static(b"$-1\r\n"), Bytes::from_static(b"_\r\n"))
        );
    }

    #[test]
    fn errors_are_sanitized() {
        let reply = Reply::error("ERR a\r\nb");
        assert_eq!(both(&reply).0, &b"-ERR a  b\r\n"[..]);
        assert_eq!(both(&reply).1, &b"-ERR a  b\r\n"[..]);
        assert!(reply.is_error());
    }

    #[test]
    fn map_is_flat_array_in_resp2_and_ordered_map_in_resp3() {
        let reply = Reply::Map(vec![
            (Reply::bulk_str("server"), Reply::bulk_str("dkv")),
            (Reply::bulk_str("proto"), Reply::Integer(3)),
            (Reply::bulk_str("modules"), Reply::Array(vec![])),
        ]);
        let (resp2, resp3) = both(&reply);
        assert_eq!(
            resp2,
            &b"*6\r\n$6\r\nserver\r\n$3\r\ndkv\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n"[..]
        );
        assert_eq!(
            resp3,
            &b"%3\r\n$6\r\nserver\r\n$3\r\ndkv\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n"[..]
        );
    }

    #[test]
    fn double_is_bulk_in_resp2_and_comma_in_resp3() {
        let (resp2, resp3) = both(&Reply::Double("0.10000000000000001".into()));
        assert_eq!(resp2, &b"$19\r\n0.10000000000000001\r\n"[..]);
        assert_eq!(resp3, &b",0.10000000000000001\r\n"[..]);
        let (_, inf) = both(&Reply::Double("-inf".into()));
        assert_eq!(inf, &b",-inf\r\n"[..]);
    }

    #[test]
    fn verbatim_is_bulk_in_resp2_and_txt_in_resp3() {
        let (resp2, resp3) = both(&Reply::Verbatim("# Server\r\n".into()));
        assert_eq!(resp2, &b"$10\r\n# Server\r\n\r\n"[..]);
        assert_eq!(resp3, &b"=14\r\ntxt:# Server\r\n\r\n"[..]);
    }

    #[test]
    fn nested_arrays_encode_in_order() {
        let reply = Reply::Array(vec![
            Reply::Array(vec![Reply::Simple("readonly"), Reply::Null]),
            Reply::Integer(1),
        ]);
        assert_eq!(
            reply.to_bytes(Protocol::Resp2),
            &b"*2\r\n*2\r\n+readonly\r\n$-1\r\n:1\r\n"[..]
        );
    }

    #[test]
    fn kv_outputs_map_to_replies() {
        use crate::kv::Output;
        assert_eq!(Reply::from(Output::Ok), Reply::OK);
        assert_eq!(Reply::from(Output::Integer(2)), Reply::Integer(2));
        assert_eq!(Reply::from(Output::Bulk(None)), Reply::Null);
        assert_eq!(
            Reply::from(Output::Error("WRONGTYPE x".into())),
            Reply::error("WRONGTYPE x")
        );
        assert_eq!(
            Reply::from(Output::NilArray).to_bytes(Protocol::Resp2),
            &b"*-1\r\n"[..]
        );
        assert_eq!(
            Reply::from(Output::NilArray).to_bytes(Protocol::Resp3),
            &b"_\r\n"[..]
        );
        assert_eq!(
            Reply::from(Output::Status("string".into())).to_bytes(Protocol::Resp2),
            &b"+string\r\n"[..]
        );
    }

    /// Redis 7: set replies (SMEMBERS ...) are arrays in RESP2 and `~` in
    /// RESP3 (bytes from redis-server 7.0.15).
    #[test]
    fn sets_are_arrays_in_resp2_and_sets_in_resp3() {
        use crate::kv::Output;
        let reply = Reply::from(Output::Set(vec![Output::bulk("1"), Output::bulk("2")]));
        assert_eq!(
            reply.to_bytes(Protocol::Resp2),
            &b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"[..]
        );
        assert_eq!(
            reply.to_bytes(Protocol::Resp3),
            &b"~2\r\n$1\r\n1\r\n$1\r\n2\r\n"[..]
        );
        assert_eq!(Reply::Set(vec![]).to_bytes(Protocol::Resp3), &b"~0\r\n"[..]);
    }

    /// Redis 7: `HRANDFIELD … WITHVALUES` is a flat array in RESP2 and an
    /// array of [field, value] arrays in RESP3 (bytes from redis-server 7.0.15).
    #[test]
    fn pairs_are_flat_in_resp2_and_nested_in_resp3() {
        use crate::kv::Output;
        let reply = Reply::from(Output::Pairs(vec![
            (Output::bulk("a"), Output::bulk("1")),
            (Output::bulk("b"), Output::bulk("2")),
        ]));
        assert_eq!(
            reply.to_bytes(Protocol::Resp2),
            &b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"[..]
        );
        assert_eq!(
            reply.to_bytes(Protocol::Resp3),
            &b"*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"[..]
        );
        assert_eq!(
            Reply::Pairs(vec![]).to_bytes(Protocol::Resp3),
            &b"*0\r\n"[..]
        );
    }
}
