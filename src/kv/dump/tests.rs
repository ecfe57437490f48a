//! Payloads captured from real Redis 7.0.15 (`redis-server` 7.0.15, default
//! configuration: the value was written with the command in the comment,
//! then `DUMP key` read over RESP and printed as hex), payloads from
//! Redis's own test suite (`tests/integration/corrupt-dump.tcl`, Redis 6
//! encodings), round trips, and hostile input.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `body` with an RDB 10 footer and a correct checksum.
fn seal(body: &[u8]) -> Vec<u8> {
    seal_version(body, RDB_VERSION)
}

fn seal_version(body: &[u8], version: u16) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    let crc = crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn list(items: &[&[u8]]) -> Value {
    let mut l = List::new();
    for i in items {
        l.push_back(i);
    }
    Value::List(l)
}

fn set(items: &[&str]) -> Value {
    let mut s = Set::new();
    for i in items {
        s.insert(i.as_bytes());
    }
    Value::Set(crate::kv::Shared::new(s))
}

fn zset(items: &[(&[u8], f64)]) -> ZSet {
    let mut z = ZSet::new();
    for (m, s) in items {
        z.add(m, *s, AddFlags::default());
    }
    z
}

fn hash(items: &[(&str, &[u8])]) -> Value {
    Value::Hash(crate::kv::Shared::new(
        items
            .iter()
            .map(|(f, v)| {
                (
                    Bytes::copy_from_slice(f.as_bytes()),
                    Bytes::copy_from_slice(v),
                )
            })
            .collect(),
    ))
}

fn s(text: &[u8]) -> Value {
    Value::Str(Bytes::copy_from_slice(text).into())
}

/// (command that made the value, Redis 7.0.15's DUMP in hex, the value,
/// whether dkv's DUMP is byte-identical).
fn captured() -> Vec<(&'static str, &'static str, Value, bool)> {
    let a = [b'a'; 5000];
    let b = [b'b'; 5000];
    let c = [b'c'; 5000];
    let m70 = [b'm'; 70];
    let v70 = [b'v'; 70];
    let mut skip = zset(&[(&m70, 1.5), (b"short", -2.0), (b"top", f64::INFINITY)]);
    assert_eq!(skip.encoding(), "skiplist");
    let z_lp = zset(&[(b"a", 1.0), (b"b", 2.5), (b"c", -3.0)]);
    skip.convert_to_packed_if_small(); // no-op: a member is over 64 bytes
    vec![
        // SET s_int 12345 (int)
        ("s_int", "00c139300a009d94ea2793fc08b9", s(b"12345"), true),
        // SET s_short hello (embstr)
        ("s_short", "000568656c6c6f0a006372df766534200a", s(b"hello"), true),
        // SET s_long <100 x> (raw, LZF-compressed in the payload)
        ("s_long", "00c3094064017878e057000178780a005db7f663bb08625f", s(&[b'x'; 100]), true),
        // SET s_big 9223372036854775807 (int, too wide for an RDB integer)
        ("s_big", "0013393232333337323033363835343737353830370a003a657e9481e85f22", s(b"9223372036854775807"), true),
        // SET s_neg -129
        ("s_neg", "00c17fff0a001760822854808480", s(b"-129"), true),
        // SET s_emb 12345678901 (11 digits, wider than 32 bits)
        ("s_emb", "000b31323334353637383930310a00304e52d727176510", s(b"12345678901"), true),
        // RPUSH l_small a 1 -5 "hello world" 70000 <72 b>
        ("l_small", "120102c32b406a1f6a00000006008161020101dffb028b68656c6c6f20776f726c640cf27011010402e04662e03c000148ff0a0045cf1b2fc196b9ab",
            list(&[b"a", b"1", b"-5", b"hello world", b"70000", &[b'b'; 70]]), true),
        // RPUSH l_nodes <5000 a> <5000 b> <5000 c> 7 (three listpack nodes)
        ("l_nodes", "120302c3404a539607961300000100f08820060061e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ee0002278dff02c3404a539607961300000100f08820060062e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ee0002278dff02c3404c539807981300000200f08820060063e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ee0004278d0701ff0a002bbf0030b10c21f5",
            list(&[&a, &b, &c, b"7"]), true),
        // RPUSH l_ints 0 127 128 -4096 4095 32767 -32768 8388607 2147483647
        //   9223372036854775807 -1 (every listpack integer width)
        ("l_ints", "12010234340000000b0000017f01c08002d00002cfff02f1ff7f03f1008003f2ffff7f04f3ffffff7f05f4ffffffffffffff7f09dfff02ff0a00098934130aeb526f",
            list(&[b"0", b"127", b"128", b"-4096", b"4095", b"32767", b"-32768", b"8388607", b"2147483647", b"9223372036854775807", b"-1"]), true),
        // SADD set_int 1 2 3 100000 (intset, 4-byte width)
        ("set_int", "0b180400000004000000010000000200000003000000a08601000a001fae6e8f199a91fb", set(&["1", "2", "3", "100000"]), true),
        // SADD set_i64 1 -9223372036854775808 (intset, 8-byte width, compressed)
        ("set_i64", "0bc312180408000000022003a00001800160080100000a0023c86d022340525c", set(&["1", "-9223372036854775808"]), true),
        // SADD set_str a b c (hashtable; member order is Redis's dict order)
        ("set_str", "02030162016101630a0099cc80dd5982d255", set(&["a", "b", "c"]), false),
        // ZADD z_lp 1 a 2.5 b -3 c (listpack)
        ("z_lp", "111a1a0000000600816302dffd02816102010181620283322e3504ff0a00a68a1ab1a9f2dcc2", Value::ZSet(crate::kv::Shared::new(z_lp)), true),
        // ZADD z_skip 1.5 <70 m> -2 short inf top (skiplist: ZSET_2)
        ("z_skip", "050303746f70000000000000f07fc3094046016d6de03900016d6d000000000000f83f0573686f727400000000000000c00a0073ac9ee26ccb6cbe", Value::ZSet(crate::kv::Shared::new(skip)), true),
        // HSET h_lp f v n 1 (listpack)
        ("h_lp", "1012120000000400816602817602816e020101ff0a00fce408f17922e016", hash(&[("f", b"v"), ("n", b"1")]), true),
        // HSET h_ht f <70 v> (hashtable: RDB_TYPE_HASH)
        ("h_ht", "04010166c3094046017676e039000176760a00f21bfa0a02f2749c", hash(&[("f", &v70)]), true),
    ]
}

#[test]
fn redis_payloads_restore_and_dump_back() {
    for (name, hex, expected, identical) in captured() {
        let payload = unhex(hex);
        let value = restore(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(value, expected, "{name}");
        if let (Value::ZSet(a), Value::ZSet(b)) = (&value, &expected) {
            assert_eq!(a.encoding(), b.encoding(), "{name}");
        }
        if let (Value::Set(a), Value::Set(b)) = (&value, &expected) {
            assert_eq!(a.encoding(), b.encoding(), "{name}");
        }
        let ours = dump(&value);
        if identical {
            assert_eq!(hex_of(&ours), hex, "{name}: DUMP differs from Redis's");
        }
        assert_eq!(restore(&ours).as_ref(), Ok(&expected), "{name}");
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn redis6_encodings_restore() {
    // Redis's corrupt-dump.tcl "hash with valid zip list header, invalid
    // entry len" (a Redis 6 HASH_ZIPLIST, RDB 9), with the bad length byte
    // (0x14) set back to 0x02 and the checksum recomputed:
    // {"a\0": "b\0", "c\0": "d\0"}.
    let body = unhex("0d1b1b00000016000000040000026100040262000402630004026400ff");
    let value = restore(&seal_version(&body, 9)).unwrap();
    assert_eq!(value, hash(&[("a\0", b"b\0"), ("c\0", b"d\0")]));
    // LIST_QUICKLIST (v1) with ziplist nodes, LIST_ZIPLIST, ZSET_ZIPLIST,
    // built here from ziplists of one-byte strings and small integers (the
    // encodings Redis 6 wrote for them).
    let zl = ziplist_of(&[b"m", b"5", b"n", b"-2"]);
    let mut body = vec![TYPE_LIST_QUICKLIST, 2];
    put_string(&mut body, &zl);
    put_string(&mut body, &ziplist_of(&[b"x"]));
    assert_eq!(
        restore(&seal_version(&body, 9)),
        Ok(list(&[b"m", b"5", b"n", b"-2", b"x"]))
    );
    let mut body = vec![TYPE_ZSET_ZIPLIST];
    put_string(&mut body, &zl);
    let expected = zset(&[(b"n", -2.0), (b"m", 5.0)]);
    assert_eq!(
        restore(&seal(&body)),
        Ok(Value::ZSet(crate::kv::Shared::new(expected)))
    );
    let mut body = vec![TYPE_LIST_ZIPLIST];
    put_string(&mut body, &zl);
    assert_eq!(restore(&seal(&body)), Ok(list(&[b"m", b"5", b"n", b"-2"])));
    // A ziplist with a wrong prevlen or tail offset is bad data.
    let mut bad = zl.clone();
    bad[10 + 3] = 9; // the second entry's prevlen
    let mut body = vec![TYPE_LIST_ZIPLIST];
    put_string(&mut body, &bad);
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    // ZSET with text scores and the special lengths (inf / -inf).
    let mut body = vec![TYPE_ZSET];
    put_len(&mut body, 3);
    for (m, score) in [
        (&b"a"[..], &b"\x031.5"[..]),
        (b"b", b"\xfe"),
        (b"c", b"\xff"),
    ] {
        put_string(&mut body, m);
        body.extend_from_slice(score);
    }
    let expected = zset(&[
        (b"a", 1.5),
        (b"b", f64::INFINITY),
        (b"c", f64::NEG_INFINITY),
    ]);
    assert_eq!(
        restore(&seal(&body)),
        Ok(Value::ZSet(crate::kv::Shared::new(expected)))
    );
    // A NaN text score (253) is bad data, as in Redis.
    let mut body = vec![TYPE_ZSET, 1];
    put_string(&mut body, b"a");
    body.push(253);
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    // Linked list (type 1).
    let mut body = vec![TYPE_LIST, 2];
    put_string(&mut body, b"x");
    put_string(&mut body, b"12");
    assert_eq!(restore(&seal(&body)), Ok(list(&[b"x", b"12"])));
}

/// A ziplist of short strings and small integers (the encodings Redis 6
/// wrote for them).
fn ziplist_of(items: &[&[u8]]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut prev = 0usize;
    let mut last = 10;
    for item in items {
        let start = entries.len();
        last = 10 + start;
        entries.push(prev as u8);
        match parse_i64(item) {
            Some(v) if (0..=12).contains(&v) => entries.push(0xf1 + v as u8),
            Some(v) => {
                entries.push(0xfe);
                entries.push(v as i8 as u8);
            }
            None => {
                entries.push(item.len() as u8);
                entries.extend_from_slice(item);
            }
        }
        prev = entries.len() - start;
    }
    let mut zl = Vec::new();
    let total = 10 + entries.len() + 1;
    zl.extend_from_slice(&(total as u32).to_le_bytes());
    zl.extend_from_slice(&(last as u32).to_le_bytes());
    zl.extend_from_slice(&(items.len() as u16).to_le_bytes());
    zl.extend_from_slice(&entries);
    zl.push(0xff);
    zl
}

#[test]
fn redis_corrupt_payloads_are_bad_data() {
    // Payloads of Redis 7.0.15's tests/integration/corrupt-dump.tcl (line
    // numbers), each refused by Redis with "Bad data format" under
    // sanitize-dump-payload yes; some were written for
    // set-skip-checksum-validation, so each is resealed with a correct
    // checksum and the parser, not the checksum, must refuse it.
    for (line, hex) in [
        (35, "0d1b1b00000016000000040000026100040262000414630004026400ff0900d910549215f55f52"),
        (45, "0d1b2500000016000000040000026100040262000402630004026400ff0900b7f76e9f434314c6"),
        (55, "0d1b1b00000016000000040000026100040262000402610004026400ff0900a1983678cc8e932e"),
        (65, "0e0113130000000e0000000200000261000e026200ff0900499730b20da1edaa"),
        (75, "0e0113130000000e00000002000002610002026200ff0900c77103970775b063"),
        (85, "0e0113130000000e00000003000002610004026200ff09004de20a2f0825df91"),
        (115, "120101000a008fc6c0571c0ab33c"),
        (124, "1201020b0b0000000100816102ffff0a007ed8de5b0dd770b8"),
        (230, "0f0000000001076d7967726f757000000002046e616d652a4caa9a7d01000000046e616d652b4caa9a7d010000000a00cced8ca762eec7c8"),
        (602, "0e0111110000000a000000010000f6ffb06c9cff09009c3747494dde94f5"),
        (613, "0281c000025f31c0020900b21be5172e15f46c"),
        (623, "0081010900f62bb67a8587724d"),
        (686, "0ec02b150000000a000000010000e06258eadf22000000ff0900df35d267dc0e89ab"),
        (697, "05c0010900f68ab67a8587724d"),
        (707, "04c0210900f68ab67a8587724d"),
        (717, "1015150000000600f00100010101825f310302010201ff0a0094210afa06529f44"),
        (746, "120102131300000010000000030000f3fe025f3104f1ff0a00198d3d74859429bd"),
        (757, "1039390000001400060106010301825f33030701825f370300010001040104010901825f39030501825f3503080108010101825f31030201f001ff0a0029d7e452797a9582"),
        (767, "0e021b1b00000016000000050000025f3904f902025f3704f702025f35ff191900000016000000050000f502025f3304f302025f31fef1ff0a006b43322fbb290abe"),
        (777, "050a025f390000000000002240c0080000000000002040025f370000000000001c40c0060000000000001840025f350000000000001440c0040000000000001040025f330000000000000840c0020000000000000040025f31000000000055f07fc00000000000000000000a00ec9486d8fd5c5fd8"),
    ] {
        let payload = unhex(hex);
        let (body, footer) = payload.split_at(payload.len() - 10);
        let version = u16::from_le_bytes([footer[0], footer[1]]);
        assert_eq!(
            restore(&seal_version(body, version)),
            Err(DumpError::BadData),
            "corrupt-dump.tcl line {line}"
        );
    }
}

#[test]
fn footer_errors() {
    let good = unhex("00c139300a009d94ea2793fc08b9");
    assert!(restore(&good).is_ok());
    assert_eq!(restore(&good[..9]), Err(DumpError::VersionOrChecksum));
    assert_eq!(restore(b""), Err(DumpError::VersionOrChecksum));
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    assert_eq!(restore(&bad_crc), Err(DumpError::VersionOrChecksum));
    // RDB 11 (Redis 7.2) is newer than 7.0 reads.
    assert_eq!(
        restore(&seal_version(&good[..4], 11)),
        Err(DumpError::VersionOrChecksum)
    );
    // Older versions are fine; trailing bytes after the object are not.
    assert_eq!(restore(&seal_version(&good[..4], 6)), Ok(s(b"12345")));
    assert_eq!(
        restore(&seal(&[0, 0xc1, 0x39, 0x30, 0])),
        Err(DumpError::BadData)
    );
    assert_eq!(
        DumpError::VersionOrChecksum.to_string(),
        "ERR DUMP payload version or checksum are wrong"
    );
    assert_eq!(DumpError::BadData.to_string(), "ERR Bad data format");
}

#[test]
fn duplicates_and_empty_collections_are_bad_data() {
    let mut body = vec![TYPE_SET, 2];
    put_string(&mut body, b"7");
    put_string(&mut body, b"7");
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    let mut body = vec![TYPE_SET, 2];
    put_string(&mut body, b"x");
    put_string(&mut body, b"x");
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    let mut body = vec![TYPE_HASH, 2];
    for _ in 0..2 {
        put_string(&mut body, b"f");
        put_string(&mut body, b"v");
    }
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    let mut body = vec![TYPE_ZSET_2, 2];
    for _ in 0..2 {
        put_string(&mut body, b"m");
        body.extend_from_slice(&1.0f64.to_le_bytes());
    }
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    // Listpack pairs with a repeated member / field.
    for kind in [TYPE_ZSET_LISTPACK, TYPE_HASH_LISTPACK] {
        let mut lp = ListpackWriter::new();
        for e in [&b"a"[..], b"1", b"a", b"2"] {
            lp.push(e);
        }
        let mut body = vec![kind];
        put_string(&mut body, &lp.finish());
        assert_eq!(restore(&seal(&body)), Err(DumpError::BadData), "{kind}");
    }
    // Intset out of order / repeated.
    let mut blob = vec![2, 0, 0, 0, 2, 0, 0, 0];
    blob.extend_from_slice(&[5, 0, 5, 0]);
    let mut body = vec![TYPE_SET_INTSET];
    put_string(&mut body, &blob);
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    // Empty collections.
    for kind in [
        TYPE_SET,
        TYPE_HASH,
        TYPE_ZSET_2,
        TYPE_LIST,
        TYPE_LIST_QUICKLIST_2,
    ] {
        assert_eq!(
            restore(&seal(&[kind, 0])),
            Err(DumpError::BadData),
            "{kind}"
        );
    }
    let empty_lp = ListpackWriter::new().finish();
    for kind in [TYPE_ZSET_LISTPACK, TYPE_HASH_LISTPACK] {
        let mut body = vec![kind];
        put_string(&mut body, &empty_lp);
        assert_eq!(restore(&seal(&body)), Err(DumpError::BadData), "{kind}");
    }
    // Unknown and unsupported types (zipmap 9, module 7) and empty bodies.
    for kind in [6u8, 7, 8, 9, 15, 19, 20, 255] {
        assert_eq!(
            restore(&seal(&[kind, 0])),
            Err(DumpError::BadData),
            "{kind}"
        );
    }
}

#[test]
fn hostile_counts_and_lengths_are_refused_without_allocating() {
    // A set claiming 2^64-1 members, a string of 2^32 bytes, an LZF string
    // expanding to 2^60 bytes: all refused at once.
    let mut body = vec![TYPE_SET];
    put_len(&mut body, u64::MAX);
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    let mut body = vec![TYPE_STRING];
    put_len(&mut body, 1 << 32);
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
    let mut body = vec![TYPE_STRING, 0xc3];
    put_len(&mut body, 2);
    put_len(&mut body, 1 << 60);
    body.extend_from_slice(&[0x00, b'a']);
    assert_eq!(restore(&seal(&body)), Err(DumpError::BadData));
}

fn sample_values() -> Vec<Value> {
    let mut big_list = List::new();
    for i in 0..3000 {
        big_list.push_back(format!("element-{i}").as_bytes());
    }
    let mut big_set = Set::new();
    for i in 0..600 {
        big_set.insert(i.to_string().as_bytes());
    }
    let mut big_zset = ZSet::new();
    for i in 0..200 {
        big_zset.add(
            format!("m{i}").as_bytes(),
            f64::from(i) / 3.0,
            AddFlags::default(),
        );
    }
    let mut big_hash = BTreeMap::new();
    for i in 0..200 {
        big_hash.insert(Bytes::from(format!("f{i}")), Bytes::from(i.to_string()));
    }
    vec![
        s(b""),
        s(b"0"),
        s(b"-1"),
        s(b"01"),
        s(b"2147483648"),
        s(&[0u8, 1, 2, 255]),
        s(&b"abcdefghij".repeat(50)),
        list(&[b"", b"-0", b"1.5", &[b'z'; 10_000]]),
        Value::List(big_list),
        set(&["-5", "7", "32768", "-2147483649"]),
        set(&["x", "1", ""]),
        Value::Set(crate::kv::Shared::new(big_set)),
        Value::ZSet(crate::kv::Shared::new(zset(&[
            (b"a", -0.0),
            (b"b", 0.1),
            (b"c", 1e300),
            (b"d", f64::NEG_INFINITY),
            (b"7", 7.0),
        ]))),
        Value::ZSet(crate::kv::Shared::new(big_zset)),
        hash(&[("", b""), ("1", b"2"), ("long", &[b'q'; 100])]),
        Value::Hash(crate::kv::Shared::new(big_hash.into())),
    ]
}

#[test]
fn round_trips() {
    for value in sample_values() {
        let payload = dump(&value);
        let back = restore(&payload).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(back, value);
        if let (Value::ZSet(a), Value::ZSet(b)) = (&back, &value) {
            assert_eq!(a.encoding(), b.encoding());
            let bits = |z: &ZSet| z.iter().map(|(_, s)| s.to_bits()).collect::<Vec<_>>();
            // -0 is written as the integer 0 in a listpack, as Redis does.
            let fix = |v: Vec<u64>| {
                v.into_iter()
                    .map(|b| if b == (-0.0f64).to_bits() { 0 } else { b })
                    .collect::<Vec<_>>()
            };
            assert_eq!(fix(bits(a)), fix(bits(b)));
        }
        if let (Value::Set(a), Value::Set(b)) = (&back, &value) {
            assert_eq!(a.encoding(), b.encoding());
        }
        // Dumping the restored value gives the same bytes.
        assert_eq!(dump(&back), payload);
    }
}

#[test]
fn truncations_and_byte_flips_never_panic() {
    let mut payloads: Vec<Vec<u8>> = captured().iter().map(|(_, hex, _, _)| unhex(hex)).collect();
    payloads.extend(sample_values().iter().take(12).map(dump));
    let mut refused = 0;
    let mut tried = 0;
    for payload in &payloads {
        let body = &payload[..payload.len() - 10];
        // Truncations (every one for small payloads, a few hundred spread
        // over large ones), resealed so the parser, not the checksum, sees them.
        for cut in (0..body.len()).step_by((body.len() / 300).max(1)) {
            tried += 1;
            if restore(&seal(&body[..cut])).is_err() {
                refused += 1;
            }
        }
        // Byte flips and small edits at every position (bounded count).
        let step = (body.len() / 200).max(1);
        for at in (0..body.len()).step_by(step) {
            for edit in [0x01u8, 0x80, 0xff, 0x40, 0x3f] {
                let mut bad = body.to_vec();
                bad[at] ^= edit;
                tried += 1;
                let _ = restore(&seal(&bad));
                bad[at] = edit;
                tried += 1;
                let _ = restore(&seal(&bad));
            }
        }
    }
    assert!(tried > 10_000, "{tried}");
    println!("{tried} hostile payloads, {refused} truncations refused");
    assert!(refused > tried / 10, "{refused} of {tried}");
}
