//! The v1 `license_signature`s a process has already made (issue 19, item 2). That signature covers only
//! (hardware id, identity, validity) (SPEC §5.2) and PKCS#1 v1.5 is deterministic, so a device that
//! checks again gets the same bytes: kept here, a check or a re-activation costs one RSA signature (the
//! body's) instead of two. Each [`crate::signing::Signer`] owns its cache, so an entry can only ever be
//! served by the key that made it: a rotated key is a new signer with an empty cache. Signatures are
//! public, so nothing secret is kept. Bounded in entries and in bytes (docs/limits.md); past the bound
//! the least recently used entry goes.

use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

/// Most signatures one signer keeps.
pub const SIGNATURE_CACHE_ENTRIES: usize = 16_384;
/// Most bytes one signer's cache takes, by [`entry_bytes`]: the entry count shrinks for larger keys.
pub const SIGNATURE_CACHE_BYTES: usize = 8 * 1024 * 1024;
/// What one entry costs besides its key and signature: the LRU's node (two links, the `String`
/// header) and its hash table slot, rounded up generously so the byte bound is an upper bound.
const ENTRY_OVERHEAD: usize = 128;

/// The key of an entry: SHA-256 of the signed message, so every entry has the same small size whatever
/// the hardware id's length.
type MessageDigest = [u8; 32];

/// The bytes one entry takes for a key whose signatures are `signature_len` bytes (base64 kept).
pub fn entry_bytes(signature_len: usize) -> usize {
    std::mem::size_of::<MessageDigest>() + signature_len.div_ceil(3) * 4 + ENTRY_OVERHEAD
}

/// License signatures of one signing key, by the digest of the message they sign.
pub struct SignatureCache {
    map: Mutex<LruCache<MessageDigest, String>>,
}

impl SignatureCache {
    /// A cache for a key whose signatures are `signature_len` bytes (its modulus length).
    pub fn new(signature_len: usize) -> Self {
        let entries = (SIGNATURE_CACHE_BYTES / entry_bytes(signature_len)).min(SIGNATURE_CACHE_ENTRIES);
        Self {
            map: Mutex::new(LruCache::new(NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN))),
        }
    }

    /// The signature of `message`: the cached one, or `sign(message)`, then cached. The lock is not
    /// held while signing, so concurrent requests never wait on another's RSA operation; two that miss
    /// the same message at once both sign it and store the same bytes.
    pub fn get_or_sign(&self, message: &[u8], sign: impl FnOnce(&[u8]) -> String) -> String {
        let digest = digest(message);
        if let Some(signature) = self.lock().get(&digest) {
            return signature.clone();
        }
        let signature = sign(message);
        self.lock().put(digest, signature.clone());
        signature
    }

    /// Most entries kept.
    pub fn capacity(&self) -> usize {
        self.lock().cap().get()
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<MessageDigest, String>> {
        // An LRU operation that panicked leaves at worst a stale entry's order; keep serving.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn digest(message: &[u8]) -> MessageDigest {
    use sha2::{Digest, Sha256};
    Sha256::digest(message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_holds_in_entries_and_bytes_for_every_key_size() {
        for bits in [2048, 3072, 4096, 8192] {
            let cache = SignatureCache::new(bits / 8);
            assert!(cache.capacity() <= SIGNATURE_CACHE_ENTRIES, "RSA-{bits}");
            assert!(
                cache.capacity() * entry_bytes(bits / 8) <= SIGNATURE_CACHE_BYTES,
                "RSA-{bits}"
            );
            // The budget does not starve the sizes in use: thousands of devices per instance.
            assert!(cache.capacity() >= 5_000, "RSA-{bits}: {}", cache.capacity());
        }
        assert_eq!(SignatureCache::new(256).capacity(), SIGNATURE_CACHE_ENTRIES);
    }

    #[test]
    fn inserting_past_the_bound_drops_the_least_recently_used() {
        let cache = SignatureCache::new(512);
        let bound = cache.capacity();
        let fake = |m: &[u8]| String::from_utf8_lossy(m).into_owned();
        for i in 0..bound + 100 {
            cache.get_or_sign(format!("m{i}").as_bytes(), fake);
            assert!(cache.len() <= bound);
        }
        assert_eq!(cache.len(), bound);
        // The oldest went; the newest is served without signing.
        let mut signed = false;
        cache.get_or_sign(b"m0", |m| {
            signed = true;
            fake(m)
        });
        assert!(signed, "m0 was evicted, so it is signed again");
        let last = format!("m{}", bound + 99);
        let hit = cache.get_or_sign(last.as_bytes(), |_| panic!("a cached message is not signed again"));
        assert_eq!(hit, last);
    }

    #[test]
    fn concurrent_requests_share_one_entry_and_agree() {
        let cache = SignatureCache::new(256);
        let answers: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..200)
                            .map(|_| cache.get_or_sign(b"h#key#", |m| m.len().to_string()))
                            .last()
                    })
                })
                .collect();
            workers.into_iter().filter_map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(answers, vec!["6".to_owned(); 8]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn different_messages_never_share_an_entry() {
        let cache = SignatureCache::new(256);
        let a = cache.get_or_sign(b"h#key#", |_| "A".into());
        let b = cache.get_or_sign(b"h#key#2030", |_| "B".into());
        assert_eq!((a.as_str(), b.as_str()), ("A", "B"));
        assert_eq!(cache.get_or_sign(b"h#key#", |_| "X".into()), "A");
    }
}
