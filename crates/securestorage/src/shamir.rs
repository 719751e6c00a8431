//! Shamir's secret sharing over GF(2⁸), the AES field (x⁸+x⁴+x³+x+1), as FORMAT.md specifies
//! a custody share: the x coordinate (1..=N), then for each byte of the secret the value at x
//! of a random polynomial of degree K−1 whose constant term is that byte.
//!
//! Ours rather than a crate's because every buffer that holds the secret or a coefficient must
//! be wiped: `vsss-rs` 6 (which wrote the version 2 files, and against which the tests check
//! these functions share for share) drops its polynomial without wiping it. Here the
//! coefficients and shares live in [`Zeroizing`] buffers, and the arithmetic is branch-free
//! and table-free, so no secret byte chooses a branch or an address. What remains unwiped:
//! single bytes in registers and on the stack while a byte is evaluated or interpolated.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::random::RandomSource;

/// Multiplication in GF(2⁸) modulo x⁸+x⁴+x³+x+1, without a branch or a table lookup on its
/// operands.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// The inverse of a nonzero element: a²⁵⁴.
fn inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exp = 254u8;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    result
}

/// Splits `secret` into `n` shares at x = 1..=n, any `k` of which give it back
/// (`2 <= k <= n <= 255`). Each share is `1 + secret.len()` bytes.
pub(crate) fn split(
    secret: &[u8],
    k: usize,
    n: usize,
    rng: &mut dyn RandomSource,
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    if !(2..=n).contains(&k) || n > 255 || secret.is_empty() {
        return Err(Error::CustodyShape {
            custodians: n,
            threshold: k,
        });
    }
    // The coefficients of every byte's polynomial above the constant term, uniformly random.
    let mut coefficients = Zeroizing::new(vec![0u8; secret.len() * (k - 1)]);
    rng.fill(coefficients.as_mut_slice())?;
    let mut shares: Vec<Zeroizing<Vec<u8>>> = (1..=n)
        .map(|x| {
            let mut share = Zeroizing::new(Vec::with_capacity(1 + secret.len()));
            share.push(x as u8);
            share
        })
        .collect();
    for (byte, higher) in secret.iter().zip(coefficients.chunks_exact(k - 1)) {
        for share in &mut shares {
            let x = share[0];
            // Horner's rule from the highest coefficient down to the secret byte.
            let mut value = 0u8;
            for &c in higher.iter().rev() {
                value = mul(value, x) ^ c;
            }
            value = mul(value, x) ^ byte;
            share.push(value);
        }
    }
    Ok(shares)
}

/// The secret `shares` (at least two, of equal length, with distinct nonzero x coordinates)
/// give: Lagrange interpolation at 0. As many shares as the split's `k` give its secret; fewer
/// give an unrelated value, which the caller's authenticated encryption then refuses.
pub(crate) fn combine(shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |reason: &str| Error::corrupt("custody shares", reason);
    let len = shares.first().map_or(0, |s| s.len());
    if shares.len() < 2 || len < 2 || shares.iter().any(|s| s.len() != len) {
        return Err(bad("fewer than two shares, or shares of different lengths"));
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[0]).collect();
    for (i, &x) in xs.iter().enumerate() {
        if x == 0 || xs[..i].contains(&x) {
            return Err(bad("a share's x coordinate is zero or repeated"));
        }
    }
    // The x coordinates are public: the basis polynomials at 0 may be computed plainly.
    let basis: Vec<u8> = xs
        .iter()
        .enumerate()
        .map(|(i, &xi)| {
            xs.iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold(1u8, |acc, (_, &xj)| mul(acc, mul(xj, inv(xj ^ xi))))
        })
        .collect();
    let mut secret = Zeroizing::new(Vec::with_capacity(len - 1));
    for at in 1..len {
        let byte = shares
            .iter()
            .zip(&basis)
            .fold(0u8, |acc, (share, &l)| acc ^ mul(share[at], l));
        secret.push(byte);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::{combine, inv, mul, split};
    use crate::random::OsRandom;

    #[test]
    fn the_field_is_aes() {
        // FIPS 197, 4.2: {57} • {83} = {c1}, {57} • {13} = {fe}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
        }
    }

    /// Share for share what vsss-rs 6 (which wrote the version 2 files) reads and writes: its
    /// shares combine with ours, ours with its.
    #[test]
    fn shares_are_vsss_rs_shares() {
        use vsss_rs::Gf256;
        let secret: Vec<u8> = (0..32).map(|i| 255 - i * 5).collect();
        let rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        let theirs = Gf256::split_bytes(3, 5, &secret, rng).unwrap();
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let chosen: Vec<&[u8]> = pick.iter().map(|&i| theirs[i].as_slice()).collect();
            assert_eq!(combine(&chosen).unwrap().as_slice(), secret.as_slice());
        }
        let ours = split(&secret, 3, 5, &mut OsRandom).unwrap();
        for (i, share) in ours.iter().enumerate() {
            assert_eq!(usize::from(share[0]), i + 1, "x = 1..=N as FORMAT.md says");
        }
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let chosen: Vec<Vec<u8>> = pick.iter().map(|&i| ours[i].to_vec()).collect();
            assert_eq!(Gf256::combine_bytes(&chosen).unwrap(), secret);
        }
    }

    #[test]
    fn every_k_subset_gives_the_secret_and_fewer_do_not() {
        let secret: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        for (k, n) in [(2, 2), (2, 3), (3, 5), (5, 5), (4, 16)] {
            let shares = split(&secret, k, n, &mut OsRandom).unwrap();
            assert!(shares.iter().all(|s| s.len() == 33));
            for bits in 0u32..(1 << n) {
                let chosen: Vec<&[u8]> = (0..n)
                    .filter(|i| bits & (1 << i) != 0)
                    .map(|i| shares[i].as_slice())
                    .collect();
                if chosen.len() < 2 {
                    continue;
                }
                let got = combine(&chosen).unwrap();
                assert_eq!(
                    got.as_slice() == secret.as_slice(),
                    chosen.len() >= k,
                    "k={k} n={n} {bits:b}"
                );
            }
        }
    }
}
