//! Redis's glob matcher (`stringmatchlen` in util.c), ported exactly: `*`, `?`,
//! `[abc]`, `[^a]`, `[a-z]`, and `\` escapes; an unterminated `[` matches as
//! Redis does. Iterative for `*` runs, recursion bounded like Redis's.

/// True if `text` matches `pattern`; `nocase` folds ASCII case (CONFIG GET).
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, text, nocase, &mut skip_longer, 0)
}

fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn fold(c: u8, nocase: bool) -> u8 {
    if nocase {
        c.to_ascii_lowercase()
    } else {
        c
    }
}

fn match_impl(pat: &[u8], s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut plen) = (0usize, pat.len() as isize);
    let (mut t, mut slen) = (0usize, s.len() as isize);
    while plen > 0 && slen > 0 {
        match at(pat, p) {
            b'*' => {
                while plen > 0 && at(pat, p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if match_impl(&pat[p + 1..], &s[t..], nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    t += 1;
                    slen -= 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                t += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = at(pat, p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let mut matched = false;
                let c = at(s, t);
                loop {
                    if at(pat, p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if at(pat, p) == c {
                            matched = true;
                        }
                    } else if at(pat, p) == b']' {
                        break;
                    } else if plen == 0 {
                        p -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && at(pat, p + 1) == b'-' {
                        let (mut start, mut end) = (at(pat, p), at(pat, p + 2));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let (start, end, c) =
                            (fold(start, nocase), fold(end, nocase), fold(c, nocase));
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if fold(at(pat, p), nocase) == fold(c, nocase) {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                t += 1;
                slen -= 1;
            }
            first => {
                let mut ch = first;
                if ch == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                    ch = at(pat, p);
                }
                if fold(ch, nocase) != fold(at(s, t), nocase) {
                    return false;
                }
                t += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while at(pat, p) == b'*' && plen > 0 {
                p += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_cases() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes(), false);
        assert!(
            !m("*", ""),
            "as stringmatchlen: KEYS/SCAN special-case a lone *"
        );
        assert!(m("*", "abc"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(!m("ab[", "ab["));
        assert!(!m("abc", "ABC"));
        assert!(matches(b"ABC", b"abc", true));
        assert!(m("k:*", "k:1"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(m("a**", "a"));
    }
}
