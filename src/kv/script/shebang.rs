//! The `#!lua flags=...` first line of an EVAL script, parsed as Redis 7.0's
//! `evalExtractShebangFlags` does (same error texts, same flag names).

/// A script's declared flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScriptFlags {
    /// No shebang: Redis's "compat mode" (may write, no flag checks).
    pub compat: bool,
    /// `no-writes`: runs as a read; write commands are refused.
    pub no_writes: bool,
    /// `allow-oom`.
    pub allow_oom: bool,
}

const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// The flags and the length of the shebang line (0 without one; the
/// newline itself stays in the code so line numbers are kept), or Redis's
/// error text (without the `ERR ` code).
pub(crate) fn parse(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((
            ScriptFlags {
                compat: true,
                ..ScriptFlags::default()
            },
            0,
        ));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let parts = crate::server::codec::split_inline(&body[..end]).unwrap_or_default();
    if parts.is_empty() {
        return Err("Invalid engine in script shebang".into());
    }
    if parts[0].as_ref() != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut flags = ScriptFlags::default();
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(part)
            ));
        };
        for flag in list.split(|&b| b == b',') {
            match FLAG_NAMES.iter().find(|n| n.as_bytes() == flag) {
                Some(&"no-writes") => flags.no_writes = true,
                Some(&"allow-oom") => flags.allow_oom = true,
                Some(_) => {}
                None => {
                    return Err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(flag)
                    ))
                }
            }
        }
    }
    Ok((flags, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 7.0.15's answers (EVAL's error texts after `ERR `).
    #[test]
    fn shebangs_as_redis() {
        assert!(parse(b"return 1").unwrap().0.compat);
        let (flags, len) = parse(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(flags.no_writes && flags.allow_oom && !flags.compat);
        assert_eq!(len, 31);
        assert_eq!(
            parse(b"#!lua\nreturn 1").unwrap(),
            (ScriptFlags::default(), 5)
        );
        let err = |b: &[u8]| parse(b).unwrap_err();
        assert_eq!(
            err(b"#!lua flags=bad\nreturn 1"),
            "Unexpected flag in script shebang: bad"
        );
        assert_eq!(
            err(b"#!lua foo=bar\nreturn 1"),
            "Unknown lua shebang option: foo=bar"
        );
        assert_eq!(
            err(b"#!python\nreturn 1"),
            "Unexpected engine in script shebang: #!python"
        );
        assert_eq!(err(b"#!lua"), "Invalid script shebang");
    }
}
