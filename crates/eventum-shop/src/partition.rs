//! Partitions of the order flow: each order belongs to one partition by a stable hash of
//! its id, and each partition has its own saga or reactor runner, so orders proceed in
//! parallel while one order's steps stay in sequence. The count must not change while
//! orders are in flight (a running order would move to another runner).

/// Partition `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

impl Partition {
    pub fn all(count: u32) -> impl Iterator<Item = Partition> {
        let count = count.max(1);
        (0..count).map(move |index| Partition { index, count })
    }

    pub fn owns(&self, key: &str) -> bool {
        fnv1a(key.as_bytes()) % u64::from(self.count.max(1)) == u64::from(self.index)
    }
}

/// FNV-1a: stable across processes and versions (unlike the std hasher's random keys).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_exactly_one_partition() {
        for key in ["a", "0193-x", "order-1", ""] {
            let owners = Partition::all(4).filter(|p| p.owns(key)).count();
            assert_eq!(owners, 1, "{key}");
        }
        assert!(Partition::all(1).all(|p| p.owns("anything")));
    }
}
