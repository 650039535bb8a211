//! Random identifiers (lock nonces, run ids) from the operating system's generator,
//! without a dependency: `/dev/urandom` where it exists, else a SHA-256 of the time,
//! the process id and a counter (unique, not secret; nothing here needs secrecy).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut out))
        .is_ok();
    if !from_os {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut filled = 0;
        while filled < N {
            let mut hasher = Sha256::new();
            hasher.update(format!(
                "{:?}/{}/{}",
                std::time::SystemTime::now(),
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let digest = hasher.finalize();
            let take = (N - filled).min(digest.len());
            out[filled..filled + take].copy_from_slice(&digest[..take]);
            filled += take;
        }
    }
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A UUID v4 in its usual text form.
pub fn uuid_v4() -> String {
    let mut b = bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
