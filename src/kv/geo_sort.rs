//! The two sorts a geo search's results go through in Redis 7.0, ported so
//! that points at equal distances (and any other ties) come out in Redis's
//! order:
//! - all results: glibc 2.36's `qsort`, a top-down merge sort that takes
//!   from the left run on ties ([`merge_sort`]): stable;
//! - only the first `COUNT` of more: Redis's `pqsort` (`pqsort.c`, the
//!   Bentley–McIlroy quicksort that skips partitions outside the wanted
//!   range, [`partial_sort`]): not stable, its tie order is its own.
//!
//! Both take a C comparator (`< 0`, `0`, `> 0`) and make exactly the
//! comparisons and moves the C code makes, so even an inconsistent
//! comparator (a NaN distance) gives Redis's result. Pure, no allocation
//! beyond the merge buffer.

use std::cmp::min;

/// glibc's `msort_with_tmp`: sorts `v` stably by `cmp`.
pub fn merge_sort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    if v.len() <= 1 {
        return;
    }
    let mut buffer = Vec::with_capacity(v.len());
    sort_run(v, cmp, &mut buffer);
}

fn sort_run<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32, buffer: &mut Vec<T>) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    sort_run(&mut v[..n1], cmp, buffer);
    sort_run(&mut v[n1..], cmp, buffer);
    buffer.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            buffer.push(v[i].clone());
            i += 1;
        } else {
            buffer.push(v[j].clone());
            j += 1;
        }
    }
    buffer.extend_from_slice(&v[i..n1]);
    // What is left of the right run is already in place.
    let merged = buffer.len();
    v[..merged].clone_from_slice(buffer);
}

/// Redis's `pqsort(v, n, cmp, lrange, rrange)`: afterwards positions
/// `lrange..=rrange` hold what a full sort would put there.
pub fn partial_sort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32, lrange: usize, rrange: usize) {
    let n = v.len();
    partition(v, 0, n, cmp, (lrange, rrange));
}

fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> i32) -> usize {
    if cmp(&v[a], &v[b]) < 0 {
        if cmp(&v[b], &v[c]) < 0 {
            b
        } else if cmp(&v[a], &v[c]) < 0 {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) > 0 {
        b
    } else if cmp(&v[a], &v[c]) < 0 {
        a
    } else {
        c
    }
}

/// Swaps `v[a..a+n]` with `v[b..b+n]` element by element (`vecswap`).
fn swap_runs<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// True if the run `[start, start + len)` holds none of `range`.
fn outside(range: (usize, usize), start: usize, len: usize) -> bool {
    let (l, r) = range;
    (l < start && r < start) || (l >= start + len && r >= start + len)
}

/// `_pqsort` on `v[a..a+n]`.
fn partition<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    cmp: &impl Fn(&T, &T) -> i32,
    range: (usize, usize),
) {
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&v[pl - 1], &v[pl]) > 0 {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c > 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[a]);
                if c < 0 {
                    break;
                }
                if c == 0 {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = min(pa - a, pb - pa);
        swap_runs(v, a, pb - r, r);
        let r = min(pd - pc, pn - pd - 1);
        swap_runs(v, pb, pn - r, r);
        let left = pb - pa;
        if left > 1 && !outside(range, a, left) {
            partition(v, a, left, cmp, range);
        }
        let right = pd - pc;
        if right > 1 {
            a = pn - right;
            n = right;
            if !outside(range, a, n) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_key(a: &(i32, usize), b: &(i32, usize)) -> i32 {
        a.0.cmp(&b.0) as i32
    }

    fn items(keys: &[i32]) -> Vec<(i32, usize)> {
        keys.iter().copied().zip(0..).collect()
    }

    #[test]
    fn merge_sort_is_stable() {
        let mut v = items(&[3, 1, 2, 1, 3, 0, 2, 1]);
        merge_sort(&mut v, &by_key);
        assert_eq!(
            v,
            vec![
                (0, 5),
                (1, 1),
                (1, 3),
                (1, 7),
                (2, 2),
                (2, 6),
                (3, 0),
                (3, 4)
            ]
        );
    }

    #[test]
    fn partial_sort_orders_the_requested_prefix() {
        // Sizes across the insertion-sort, median-of-3 and ninther paths.
        for n in [1usize, 5, 7, 8, 30, 41, 200] {
            for count in [1, 2, n / 2 + 1, n].into_iter().filter(|&c| c <= n) {
                let keys: Vec<i32> = (0..n).map(|i| ((i * 7919 + 13) % 97) as i32).collect();
                let mut v = items(&keys);
                partial_sort(&mut v, &by_key, 0, count - 1);
                let mut sorted = keys.clone();
                sorted.sort();
                let got: Vec<i32> = v.iter().map(|x| x.0).take(count).collect();
                assert_eq!(got, sorted[..count], "n {n} count {count}");
                let mut all: Vec<i32> = v.iter().map(|x| x.0).collect();
                all.sort();
                assert_eq!(all, sorted, "a permutation");
            }
        }
    }

    /// Keys from the C harness's LCG (`s = s * 1103515245 + 12345`, key
    /// `(s >> 16) % modulus`), ids in input order.
    fn lcg_items(n: usize, seed: u32, modulus: u32) -> Vec<(i32, usize)> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (((s >> 16) % modulus) as i32, i)
            })
            .collect()
    }

    #[test]
    fn tie_orders_are_glibc_qsorts_and_redis_pqsorts() {
        // (n, count, seed, modulus, ids after the sort) printed by a C
        // program that sorts the same keys with Redis 7.0.15's pqsort.c
        // (count < n) or glibc 2.36's qsort (count == n).
        let cases: &[(usize, usize, u32, u32, &str)] = &[
            (10, 3, 1, 2, "0 1 6 8 9 5 7 2 3 4"),
            (12, 12, 3, 2, "3 4 5 8 11 0 1 2 6 7 9 10"),
            (8, 2, 5, 2, "5 6 2 4 0 7 1 3"),
            (45, 1, 9, 4, "22 36 30 0 21 18 44 39 27 6 8 9 10 11 14 19 20 26 28 34 40 12 7 23 24 25 41 5 42 29 4 31 32 33 43 35 3 37 38 15 16 17 13 2 1"),
            (50, 5, 7, 3, "45 6 36 18 44 35 34 22 43 47 39 11 38 3 0 49 5 9 13 14 15 16 19 24 26 28 29 30 31 32 33 41 46 48 21 20 17 37 12 23 10 25 40 27 2 42 8 7 4 1"),
            (100, 20, 11, 5, "68 99 85 27 5 29 6 83 92 8 52 81 61 76 54 39 58 49 73 70 44 47 13 89 2 11 66 63 56 91 90 16 17 18 19 20 88 10 94 87 82 9 38 75 41 62 4 22 23 25 28 30 32 33 36 45 46 64 65 67 69 74 77 51 3 95 50 96 48 97 43 71 72 42 98 40 37 1 78 79 80 35 34 31 84 26 86 24 21 15 14 12 7 93 57 55 59 60 53 0"),
        ];
        for &(n, count, seed, modulus, want) in cases {
            let mut v = lcg_items(n, seed, modulus);
            if count == n {
                merge_sort(&mut v, &by_key);
            } else {
                partial_sort(&mut v, &by_key, 0, count - 1);
            }
            let got: Vec<String> = v.iter().map(|x| x.1.to_string()).collect();
            assert_eq!(got.join(" "), want, "n {n} count {count} seed {seed}");
        }
    }
}
