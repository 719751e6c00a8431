//! The balancer's stable hashing of host names: fixed forever, since plans depend on it.

use crate::HostName;

/// A 64-bit hash of a name that is the same on every machine and in every release, used
/// where the balancer needs a stable pseudo-random order (std's hashers promise neither).
///
/// The bytes are taken eight at a time as little-endian words (the last one padded with
/// zeros), with bit 0x20 set in every byte: for the characters a host name may hold (letters,
/// digits, `-` and `.`) that is exactly ASCII lower-casing. Each word is folded in with a
/// multiply and a rotation, and the result goes through SplitMix64's finaliser.
pub(crate) fn stable_hash(name: &HostName) -> u64 {
    const LOWER: u64 = 0x2020_2020_2020_2020;
    let fold = |h: u64, word: u64| {
        (h ^ (word | LOWER))
            .wrapping_mul(0xff51_afd7_ed55_8ccd)
            .rotate_left(29)
    };
    let bytes = name.as_str().as_bytes();
    let mut h = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = fold(h, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = fold(h, u64::from_le_bytes(word));
    }
    mix(h)
}

/// SplitMix64's finaliser: a bijective mixer of 64-bit values.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_hash_alike() {
        let a = HostName::new("MGT01.Prod.Local").unwrap();
        let b = HostName::new("mgt01.prod.local").unwrap();
        assert_eq!(stable_hash(&a), stable_hash(&b));
    }

    #[test]
    fn stable_hash_is_fixed_forever() {
        // Balancing plans depend on this value: changing it reshuffles every management group.
        let h = stable_hash(&HostName::new("server01.company.local").unwrap());
        assert_eq!(
            h,
            stable_hash(&HostName::new("SERVER01.company.local").unwrap())
        );
        assert_eq!(h, 0xb751_c6ad_4570_81aa, "got {h:#x}");
    }
}
