//! The HyperLogLog commands against redis-server 7.0.15: replies, and the
//! bytes of the strings they leave (checked by SHA1 past the header).

use sha1::{Digest, Sha1};

use super::super::bitmaps::tests::Machine;
use crate::kv::Output;

fn sha1_after_header(m: &Machine, key: &str) -> String {
    let bytes = m.value(key).expect("a string");
    hex(&Sha1::digest(&bytes[16..]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pfadd_range(m: &mut Machine, key: &str, n: usize) -> Output {
    let elements: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
    args.extend(elements.iter().map(|e| e.as_bytes()));
    m.run(&args)
}

#[test]
fn counts_and_bytes_equal_redis_sparse_dense_and_merged() {
    let mut m = Machine::new();
    assert_eq!(pfadd_range(&mut m, "big", 1000), Output::Integer(1));
    assert_eq!(pfadd_range(&mut m, "big2", 5000), Output::Integer(1));
    m.exec("PFADD h a b c");
    assert_eq!(m.query("PFCOUNT big"), Output::Integer(1008));
    assert_eq!(m.query("PFCOUNT big2"), Output::Integer(4968));
    assert_eq!(m.query("PFCOUNT h"), Output::Integer(3));
    assert_eq!(m.query("PFCOUNT big big2 h"), Output::Integer(4972));
    assert_eq!(
        m.exec("PFDEBUG ENCODING big"),
        Output::Status("sparse".into())
    );
    assert_eq!(
        m.exec("PFDEBUG ENCODING big2"),
        Output::Status("dense".into())
    );
    assert_eq!(
        sha1_after_header(&m, "big"),
        "84ffe164fa1c77d5a706d34cc17bb10429375b62"
    );
    assert_eq!(
        sha1_after_header(&m, "big2"),
        "36b7b899ed6d58ae5e3232dda6f3c94e9a9074a3"
    );
    assert_eq!(m.exec("PFMERGE m h big"), Output::Ok);
    assert_eq!(m.query("PFCOUNT m"), Output::Integer(1012));
    assert_eq!(
        sha1_after_header(&m, "m"),
        "5a0661edc9fcb09f9893ad01d5c368906cfeb5f0"
    );
    assert_eq!(m.exec("PFMERGE m2 big2 h"), Output::Ok);
    assert_eq!(m.query("PFCOUNT m2"), Output::Integer(4972));
    assert_eq!(
        sha1_after_header(&m, "m2"),
        "76da18e004e7b51fca0a110763cb66a9d45b1540"
    );
    assert_eq!(m.encoding("m2"), Some("raw"));
}

#[test]
fn the_header_is_redis_after_writes_and_pfcount_stores_nothing() {
    let mut m = Machine::new();
    assert_eq!(m.exec("PFADD h a b c"), Output::Integer(1));
    let redis = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80`\xf3\x80P\xb1\x84K\xfb\x80BZ";
    assert_eq!(m.value("h").as_deref(), Some(&redis[..]));
    let version = m.version("h");
    assert_eq!(m.query("PFCOUNT h"), Output::Integer(3));
    // Redis would now hold the count 3 in bytes 8..16; dkv's read stores
    // nothing (see the module docs).
    assert_eq!(m.value("h").as_deref(), Some(&redis[..]));
    assert_eq!(m.version("h"), version);
    assert_eq!(m.exec("PFADD h a"), Output::Integer(0));
    assert_eq!(m.version("h"), version, "no change, no modification");
    assert_eq!(m.exec("PFADD e"), Output::Integer(1));
    assert_eq!(
        m.value("e").as_deref(),
        Some(&b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff"[..])
    );
}

#[test]
fn errors_follow_redis() {
    let mut m = Machine::new();
    let not_hll = Output::err("WRONGTYPE Key is not a valid HyperLogLog string value.");
    let corrupt = Output::err("INVALIDOBJ Corrupted HLL object detected");
    m.exec("RPUSH l a");
    m.exec("SET s abc");
    let wrongtype =
        Output::err("WRONGTYPE Operation against a key holding the wrong kind of value");
    assert_eq!(m.exec("PFADD l a"), wrongtype);
    assert_eq!(m.query("PFCOUNT l"), wrongtype);
    assert_eq!(m.exec("PFADD s a"), not_hll);
    assert_eq!(m.query("PFCOUNT s"), not_hll);
    assert_eq!(m.query("PFCOUNT x s"), not_hll);
    assert_eq!(m.exec("PFMERGE d s"), not_hll);
    assert_eq!(m.exec("PFDEBUG ENCODING s"), not_hll);
    assert_eq!(
        m.exec("PFDEBUG DECODE nokey"),
        Output::err("ERR The specified key does not exist")
    );
    let header: &[u8] = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80";
    m.run(&[b"SET", b"f6", &[header, b"\x7f\xff\x7f\xff"].concat()]);
    assert_eq!(m.query("PFCOUNT f6"), corrupt);
    assert_eq!(m.exec("PFADD f6 a b c"), Output::Integer(1));
    assert_eq!(m.query("PFCOUNT f6 f6"), corrupt);
    m.run(&[b"SET", b"f7", &[header, b"\x3f\x3f\xff\xff\xff"].concat()]);
    assert_eq!(m.exec("PFADD f7 a b c"), corrupt);
    assert_eq!(m.exec("PFMERGE f7 f6"), corrupt);
    assert_eq!(m.exec("PFDEBUG TODENSE f7"), corrupt);
    assert_eq!(
        m.exec("PFDEBUG foo f6"),
        Output::err("ERR Unknown PFDEBUG subcommand 'foo'")
    );
    m.run(&[b"SET", b"f5", header]);
    assert_eq!(m.query("PFCOUNT f5"), corrupt);
}

#[test]
fn pfdebug_converts_without_a_modification() {
    let mut m = Machine::new();
    m.exec("PFADD h a b c");
    let version = m.version("h");
    assert_eq!(
        m.exec("PFDEBUG DECODE h"),
        Output::bulk("Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603")
    );
    let Output::Array(regs) = m.exec("PFDEBUG GETREG h") else {
        panic!("GETREG answers an array");
    };
    assert_eq!(regs.len(), 16384);
    assert_eq!(regs[12711], Output::Integer(2));
    assert_eq!(m.exec("PFDEBUG ENCODING h"), Output::Status("dense".into()));
    assert_eq!(m.exec("PFDEBUG TODENSE h"), Output::Integer(0));
    assert_eq!(
        m.exec("PFDEBUG DECODE h"),
        Output::err("ERR HLL encoding is not sparse")
    );
    assert_eq!(m.version("h"), version);
    assert_eq!(m.query("PFCOUNT h"), Output::Integer(3));
}
