//! Bucket tables for nexthop groups (resilient hashing).
//!
//! A group is a table of `n` buckets, each naming a next-hop; the forwarder maps a flow hash onto a
//! bucket. Each member gets a share of buckets proportional to its weight (largest remainder), and
//! shares are interleaved. When the member set changes, [`resilient`] keeps every bucket whose
//! next-hop stays (up to its new share) and reassigns only the others, so flows of the surviving
//! next-hops keep their path.

/// Bucket shares per member: proportional to weight, summing to `n` (largest remainder method).
fn quotas(members: &[(u32, u32)], n: usize) -> Vec<usize> {
    let total: u64 = members.iter().map(|&(_, w)| u64::from(w.max(1))).sum();
    let mut q: Vec<usize> = Vec::with_capacity(members.len());
    let mut rem: Vec<(u64, usize)> = Vec::with_capacity(members.len());
    for (i, &(_, w)) in members.iter().enumerate() {
        let exact = u64::from(w.max(1)) * n as u64;
        q.push((exact / total) as usize);
        rem.push((exact % total, i));
    }
    let mut left = n - q.iter().sum::<usize>();
    rem.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in &rem {
        if left == 0 {
            break;
        }
        q[i] += 1;
        left -= 1;
    }
    q
}

/// Fills the `None` buckets round-robin with members that still have share left.
fn fill(table: &mut [Option<u32>], members: &[(u32, u32)], left: &mut [usize]) {
    let mut m = 0;
    for slot in table.iter_mut().filter(|s| s.is_none()) {
        while left[m] == 0 {
            m = (m + 1) % members.len();
        }
        *slot = Some(members[m].0);
        left[m] -= 1;
        m = (m + 1) % members.len();
    }
}

/// A fresh table of `n` buckets over `(nh_id, weight)` members (weight 0 counts as 1).
/// Panics if `members` is empty or `n` is 0.
pub fn buckets(members: &[(u32, u32)], n: usize) -> Vec<u32> {
    assert!(
        !members.is_empty() && n > 0,
        "a group needs members and buckets"
    );
    let mut left = quotas(members, n);
    let mut table = vec![None; n];
    fill(&mut table, members, &mut left);
    table
        .into_iter()
        .map(|b| b.expect("every bucket filled"))
        .collect()
}

/// The table for a new member set derived from `old`: buckets whose next-hop is still a member keep
/// it (up to that member's new share), the others go to members below their share.
pub fn resilient(old: &[u32], members: &[(u32, u32)]) -> Vec<u32> {
    assert!(
        !members.is_empty() && !old.is_empty(),
        "a group needs members and buckets"
    );
    let mut left = quotas(members, old.len());
    let mut table: Vec<Option<u32>> = old
        .iter()
        .map(|&nh| {
            let i = members.iter().position(|&(id, _)| id == nh)?;
            if left[i] > 0 {
                left[i] -= 1;
                Some(nh)
            } else {
                None
            }
        })
        .collect();
    fill(&mut table, members, &mut left);
    table
        .into_iter()
        .map(|b| b.expect("every bucket filled"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(t: &[u32], nh: u32) -> usize {
        t.iter().filter(|&&x| x == nh).count()
    }

    #[test]
    fn shares_follow_weights() {
        let t = buckets(&[(1, 1), (2, 3)], 256);
        assert_eq!(count(&t, 1), 64);
        assert_eq!(count(&t, 2), 192);
        let t = buckets(&[(1, 1), (2, 1), (3, 1)], 256);
        assert!([85, 86].contains(&count(&t, 1)));
        assert_eq!(count(&t, 1) + count(&t, 2) + count(&t, 3), 256);
    }

    #[test]
    fn removing_a_member_moves_only_its_buckets() {
        let members: Vec<(u32, u32)> = (1..=8).map(|i| (i, 1)).collect();
        let old = buckets(&members, 256);
        let new = resilient(&old, &members[1..]);
        for (o, n) in old.iter().zip(&new) {
            if *o != 1 {
                assert_eq!(o, n, "a bucket of a surviving next-hop moved");
            }
        }
        assert_eq!(count(&new, 1), 0);
        for i in 2..=8 {
            assert!((36..=37).contains(&count(&new, i)));
        }
    }
}
