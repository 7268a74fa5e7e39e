//! Sticky bucketing: which share of a split a targeting key falls in.
//!
//! `bucket = murmur3_x86_32(utf8("<flag>/<targetingKey>"), seed 0) mod 100000`. The bucket depends only on
//! the flag and the key, so a user keeps their answer when a split's percentage grows. The hash is computed
//! over the three pieces in turn, without building the joined string, so bucketing allocates nothing.
//! `spec/bucketing.json` pins the function with vectors every implementation runs.

/// The number of buckets; split weights are out of this.
pub const BUCKETS: u32 = 100_000;

/// The bucket of `targeting_key` for `flag`, in `0..BUCKETS`.
pub fn bucket(flag: &str, targeting_key: &str) -> u32 {
    bucket_after(&prefix(flag), targeting_key)
}

/// The hasher state after `"<flag>/"`: the part of every bucket computation that only depends on the flag,
/// computed once when the flag is compiled.
pub fn prefix(flag: &str) -> Murmur3 {
    let mut hasher = Murmur3::new(0);
    hasher.write(flag.as_bytes());
    hasher.write(b"/");
    hasher
}

/// The bucket of `targeting_key`, continuing from a flag's [`prefix`].
pub fn bucket_after(prefix: &Murmur3, targeting_key: &str) -> u32 {
    let mut hasher = prefix.clone();
    hasher.write(targeting_key.as_bytes());
    hasher.finish() % BUCKETS
}

/// MurmurHash3 x86 32-bit, fed in pieces.
#[derive(Debug, Clone)]
pub struct Murmur3 {
    hash: u32,
    tail: [u8; 4],
    tail_len: usize,
    length: usize,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

fn mix_block(block: u32) -> u32 {
    block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

impl Murmur3 {
    /// A hasher with this seed.
    pub fn new(seed: u32) -> Self {
        Self { hash: seed, tail: [0; 4], tail_len: 0, length: 0 }
    }

    /// Feeds bytes.
    pub fn write(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len();
        if self.tail_len > 0 {
            while self.tail_len < 4 && !bytes.is_empty() {
                self.tail[self.tail_len] = bytes[0];
                self.tail_len += 1;
                bytes = &bytes[1..];
            }
            if self.tail_len < 4 {
                return;
            }
            self.block(u32::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut chunks = bytes.chunks_exact(4);
        for chunk in &mut chunks {
            self.block(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        }
        let rest = chunks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn block(&mut self, block: u32) {
        self.hash ^= mix_block(block);
        self.hash = self.hash.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> u32 {
        let mut hash = self.hash;
        if self.tail_len > 0 {
            let mut last = 0u32;
            for (index, byte) in self.tail[..self.tail_len].iter().enumerate() {
                last |= u32::from(*byte) << (8 * index);
            }
            hash ^= mix_block(last);
        }
        hash ^= self.length as u32;
        hash ^= hash >> 16;
        hash = hash.wrapping_mul(0x85eb_ca6b);
        hash ^= hash >> 13;
        hash = hash.wrapping_mul(0xc2b2_ae35);
        hash ^ (hash >> 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_vectors_hold() {
        let spec: serde_json::Value = serde_json::from_str(include_str!("../../../spec/bucketing.json")).unwrap();
        let vectors = spec["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 50);
        for vector in vectors {
            let flag = vector["flag"].as_str().unwrap();
            let key = vector["targeting_key"].as_str().unwrap();
            let mut whole = Murmur3::new(0);
            whole.write(format!("{flag}/{key}").as_bytes());
            assert_eq!(u64::from(whole.finish()), vector["hash"].as_u64().unwrap(), "{flag}/{key}");
            assert_eq!(u64::from(bucket(flag, key)), vector["bucket"].as_u64().unwrap(), "{flag}/{key}");
        }
    }

    #[test]
    fn pieces_hash_like_the_whole() {
        let text = b"experiment.voice_v2/some-longer-targeting-key";
        let mut whole = Murmur3::new(0);
        whole.write(text);
        for split in 0..text.len() {
            let mut pieces = Murmur3::new(0);
            pieces.write(&text[..split]);
            pieces.write(&text[split..]);
            assert_eq!(pieces.finish(), whole.finish(), "split at {split}");
        }
    }
}
