//! GEO commands against replies printed by redis-server 7.0.15 for the
//! same commands (RESP2; `nil[]` is a null array).

use bytes::Bytes;

use crate::kv::{Command, Db, Op, Output};
use crate::server::reply::{Protocol, Reply};

fn exec(db: &mut Db, line: &str) -> Output {
    let args: Vec<Bytes> = line
        .split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    db.apply(&Command {
        ts_ms: 1_000,
        op: Op::Exec { db: 0, args },
    })
}

/// The reply as a client reads it in RESP2, written compactly: arrays
/// `[..]`, errors `!text`, nil `nil`, a null array `nil[]`.
fn show(o: Output) -> String {
    let wire = Reply::from(o).to_bytes(Protocol::Resp2);
    let mut lines = wire
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    fn item<'a>(lines: &mut impl Iterator<Item = &'a [u8]>) -> String {
        let line = lines.next().unwrap_or_default();
        let text = String::from_utf8_lossy(&line[1..]).into_owned();
        let count = || text.parse::<i64>().unwrap_or(-1);
        match line[0] {
            b'-' => format!("!{text}"),
            b'$' if count() < 0 => "nil".into(),
            b'$' => String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned(),
            b'*' if count() < 0 => "nil[]".into(),
            b'*' => {
                let items: Vec<String> = (0..count()).map(|_| item(lines)).collect();
                format!("[{}]", items.join(" "))
            }
            _ => text,
        }
    }
    item(&mut lines)
}

fn check(db: &mut Db, cases: &[(&str, &str)]) {
    for (line, want) in cases {
        assert_eq!(show(exec(db, line)), *want, "{line}");
    }
}

#[test]
fn commands_reply_as_redis() {
    let mut db = Db::new();
    check(
        &mut db,
        &[
            ("geoadd Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania", "2"),
            ("geoadd Sicily nx 13.361389 38.115556 Palermo 12 37 Trapani", "1"),
            ("geoadd Sicily xx ch 13.5 38.115556 Palermo 14 37 Nowhere", "1"),
            ("geoadd Sicily nx xx 1 2 a", "!ERR syntax error"),
            ("geoadd Sicily 1 2 a 3", "!ERR syntax error"),
            ("geoadd Sicily nx nx nx", "!ERR syntax error"),
            ("geoadd Sicily 200 1 x", "!ERR invalid longitude,latitude pair 200.000000,1.000000"),
            ("geoadd Sicily 1 85.06 x", "!ERR invalid longitude,latitude pair 1.000000,85.060000"),
            ("geoadd Sicily 1 x x", "!ERR value is not a valid float"),
            ("geoadd Sicily lt 1 2 x", "!ERR syntax error"),
            ("geopos Sicily Palermo nope Catania", "[[13.50000053644180298 38.11555639549629859] nil[] [15.08726745843887329 37.50266842333162032]]"),
            ("geopos nokey a", "[nil[]]"),
            ("geohash Sicily Palermo Catania nope", "[sqc8g4wrhy0 sqdtr74hyu0 nil]"),
            ("geodist Sicily Palermo Catania", "155245.3204"),
            ("geodist Sicily Palermo Catania KM", "155.2453"),
            ("geodist Sicily Palermo Catania mi", "96.4652"),
            ("geodist Sicily Palermo Catania ft", "509335.0406"),
            ("geodist Sicily Palermo nope", "nil"),
            ("geodist nokey Palermo nope", "nil"),
            ("geodist Sicily Palermo Catania yards", "!ERR unsupported unit provided. please use M, KM, FT, MI"),
            ("geodist nokey a b c", "!ERR unsupported unit provided. please use M, KM, FT, MI"),
            ("geodist Sicily a b km x", "!ERR syntax error"),
            ("georadius Sicily 15 37 200 km", "[Palermo Catania]"),
            ("georadius Sicily 15 37 200 km withdist", "[[Palermo 181.3463] [Catania 56.4413]]"),
            ("georadius Sicily 15 37 200 km withcoord withdist withhash desc", "[[Palermo 181.3463 3479100629809192 [13.50000053644180298 38.11555639549629859]] [Catania 56.4413 3479447370796909 [15.08726745843887329 37.50266842333162032]]]"),
            ("georadius Sicily 15 37 200 km count 1", "[Catania]"),
            ("georadius Sicily 15 37 200 km count 2 any", "[Palermo Catania]"),
            ("georadius Sicily 15 37 200 km any", "!ERR the ANY argument requires COUNT argument"),
            ("georadius Sicily 15 37 200 km count 0", "!ERR COUNT must be > 0"),
            ("georadius Sicily 15 37 200 km count -3", "!ERR COUNT must be > 0"),
            ("georadius Sicily 15 37 200 km count x", "!ERR value is not an integer or out of range"),
            ("georadius Sicily 15 37 200 km store", "!ERR syntax error"),
            ("georadius Sicily 15 37 200 km store dst", "2"),
            ("zrange dst 0 -1 withscores", "[Palermo 3479100629809192 Catania 3479447370796909]"),
            ("georadius Sicily 15 37 200 km storedist dst asc", "2"),
            ("zrange dst 0 -1 withscores", "[Catania 56.441257870158204 Palermo 181.34629951090002]"),
            ("georadius Sicily 15 37 200 km store dst withdist", "!ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
            ("georadius Sicily 15 37 1 km store dst", "0"),
            ("exists dst", "0"),
            ("georadius nokey 15 37 1 km", "[]"),
            ("georadius nokey 15 37 1 km store Sicily2", "0"),
            ("georadius Sicily 181 37 1 km", "!ERR invalid longitude,latitude pair 181.000000,37.000000"),
            ("georadius Sicily 15 37 x km", "!ERR need numeric radius"),
            ("georadius Sicily 15 37 -1 km", "!ERR radius cannot be negative"),
            ("georadius Sicily 15 37 1 parsec", "!ERR unsupported unit provided. please use M, KM, FT, MI"),
            ("georadius Sicily 15 37 1 km bogus", "!ERR syntax error"),
            ("georadius_ro Sicily 15 37 200 km store dst", "!ERR syntax error"),
            ("georadius_ro Sicily 15 37 200 km withdist asc", "[[Catania 56.4413] [Palermo 181.3463]]"),
            ("georadiusbymember Sicily Palermo 100 km withdist", "[[Palermo 0.0000]]"),
            ("georadiusbymember Sicily nope 100 km withdist", "!ERR could not decode requested zset member"),
            ("georadiusbymember nokey nope x km withdist", "[]"),
            ("georadiusbymember nokey nope x km withdist store x", "!ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
            ("georadiusbymember Sicily Palermo 300 km storedist dst desc", "3"),
            ("zrange dst 0 -1 withscores", "[Palermo 0 Catania 155.24532037391273 Trapani 181.3462216055305]"),
            ("georadiusbymember_ro Sicily Palermo 300 km withhash", "[[Palermo 3479100629809192] [Catania 3479447370796909] [Trapani 3475952690022668]]"),
            ("geosearch Sicily frommember Palermo byradius 300 km asc withdist", "[[Palermo 0.0000] [Catania 155.2453] [Trapani 181.3462]]"),
            ("geosearch Sicily fromlonlat 15 37 bybox 400 400 km desc withcoord", "[[Palermo [13.50000053644180298 38.11555639549629859]] [Catania [15.08726745843887329 37.50266842333162032]]]"),
            ("geosearch Sicily fromlonlat 15 37 bybox 100 400 km", "[Catania]"),
            ("geosearch Sicily frommember Palermo", "!ERR wrong number of arguments for 'geosearch' command"),
            ("geosearch Sicily byradius 1 km withdist", "!ERR wrong number of arguments for 'geosearch' command"),
            ("geosearch Sicily frommember Palermo fromlonlat 1 2 byradius 1 km", "!ERR syntax error"),
            ("geosearch Sicily fromlonlat 1 2 frommember Palermo byradius 1 km", "!ERR syntax error"),
            ("geosearch Sicily frommember Palermo byradius 1 km bybox 1 1 km", "!ERR syntax error"),
            ("geosearch Sicily frommember nope byradius 1 km", "!ERR could not decode requested zset member"),
            ("geosearch nokey frommember nope byradius 1 km", "[]"),
            ("geosearch nokey frommember nope bybox 1 x km", "!ERR need numeric height"),
            ("geosearch Sicily frommember Palermo bybox 1 x km", "!ERR need numeric height"),
            ("geosearch Sicily frommember Palermo bybox x 1 km", "!ERR need numeric width"),
            ("geosearch Sicily frommember Palermo bybox -1 1 km", "!ERR height or width cannot be negative"),
            ("geosearch Sicily frommember Palermo byradius 300 km store dst", "!ERR syntax error"),
            ("geosearch Sicily frommember Palermo byradius 300 km storedist", "!ERR syntax error"),
            ("geosearchstore dst Sicily frommember Palermo byradius 300 km storedist", "3"),
            ("zrange dst 0 -1 withscores", "[Palermo 0 Catania 155.24532037391273 Trapani 181.3462216055305]"),
            ("geosearchstore dst Sicily frommember Palermo byradius 300 km count 1 withdist", "!ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
            ("geosearchstore dst Sicily frommember Palermo byradius 300 km count 1", "1"),
            ("zrange dst 0 -1 withscores", "[Palermo 3479100629809192]"),
            ("geosearchstore dst nokey frommember Palermo byradius 300 km", "0"),
            ("exists dst", "0"),
            ("GeoSearch Sicily byradius 1 km any", "!ERR wrong number of arguments for 'geosearch' command"),
            ("set str x", "OK"),
            ("geosearch str frommember nope", "!ERR wrong number of arguments for 'geosearch' command"),
            ("georadius str 1 2 1 km", "!WRONGTYPE Operation against a key holding the wrong kind of value"),
            ("geopos str a", "!WRONGTYPE Operation against a key holding the wrong kind of value"),
            ("geohash str a", "!WRONGTYPE Operation against a key holding the wrong kind of value"),
            ("geoadd str 1 2 a", "!WRONGTYPE Operation against a key holding the wrong kind of value"),
            ("geodist str a b", "!WRONGTYPE Operation against a key holding the wrong kind of value"),
            ("geosearchstore dst str frommember a byradius 1 km", "!WRONGTYPE Operation against a key holding the wrong kind of value"),
            ("geosearchstore str Sicily frommember Palermo byradius 1 m", "1"),
            ("type str", "zset"),
            ("GeoSearch Sicily byradius 1 km asc desc", "!ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GeoSearch"),
            ("GEOSEARCH Sicily frommember Palermo withdist asc desc", "!ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH"),
            ("geosearch Sicily frommember Palermo byradius 1 km any", "!ERR the ANY argument requires COUNT argument"),
            ("geosearch Sicily frommember Palermo byradius 1 km count 1 any withdist", "[[Palermo 0.0000]]"),
            ("geosearch Sicily frommember nope byradius 1 km withdist store", "!ERR could not decode requested zset member"),
            ("geosearch Sicily frommember Palermo\x00 byradius 1 km", "!ERR could not decode requested zset member"),
            ("geoadd Sicily NX CH 13.361389 38.115556 Palermo", "0"),
            ("geodist Sicily Palermo Palermo m", "0.0000"),
        ],
    );
}

#[test]
fn coordinates_are_doubles_and_distances_bulk_strings() {
    let mut db = Db::new();
    exec(&mut db, "geoadd g 13.361389 38.115556 Palermo");
    let Output::Array(items) = exec(&mut db, "geopos g Palermo") else {
        panic!("an array");
    };
    assert_eq!(
        items,
        vec![Output::Array(vec![
            Output::Double("13.36138933897018433".into()),
            Output::Double("38.11555639549629859".into()),
        ])]
    );
    assert_eq!(
        exec(&mut db, "geodist g Palermo Palermo"),
        Output::bulk("0.0000")
    );
}

#[test]
fn argument_errors_are_answered_before_proposing() {
    use crate::kv::table::testing::assert_checks;
    assert_checks(&[
        ("geoadd g 1 2 m", None),
        ("geoadd g nx xx 1 2 m", Some("ERR syntax error")),
        ("geoadd g 1 2 m 3", Some("ERR syntax error")),
        (
            "geoadd g 1 -86 m",
            Some("ERR invalid longitude,latitude pair 1.000000,-86.000000"),
        ),
        ("geoadd g 1 nan m", Some("ERR value is not a valid float")),
        ("geodist g a b km x", Some("ERR syntax error")),
        (
            "geodist g a b yd",
            Some("ERR unsupported unit provided. please use M, KM, FT, MI"),
        ),
        // Searches read the key first (WRONGTYPE wins): nothing is refused
        // before the data is seen.
        ("georadius g 1 2 x km", None),
        ("geosearch g frommember m bogus x y", None),
        (
            "geosearchstore d g frommember m byradius 1 km withdist",
            None,
        ),
    ]);
}
