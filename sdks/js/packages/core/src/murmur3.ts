/**
 * Sticky bucketing: `bucket = murmur3_x86_32(utf8("<flag>/<targetingKey>"), seed 0) mod 100000`.
 *
 * The hash runs over the UTF-8 bytes of JavaScript strings without building them: characters are encoded
 * as they are read (lone surrogates as U+FFFD, as `TextEncoder` does), four ASCII characters at a time when
 * they can be. A flag hashes `"<flag>/"` once, when it is compiled, and every key continues from there, so
 * bucketing allocates nothing. `spec/bucketing.json` pins the function.
 */

/** The number of buckets; split weights are out of this. */
export const BUCKETS = 100_000;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/**
 * A murmur3 hasher fed in pieces: the hash of the complete 4-byte blocks so far, the bytes of the
 * incomplete block (little-endian in `tail`, `tailBits` of them), and the total length.
 */
export class Murmur3 {
  /** The hash after the complete blocks. */
  hash: number;
  /** The bytes after the last complete block, little-endian. */
  tail = 0;
  /** How many bits of `tail` are used: 0, 8, 16 or 24. */
  tailBits = 0;
  /** How many bytes were fed. */
  length = 0;

  /** A hasher with this seed (an unsigned 32-bit integer). */
  constructor(seed = 0) {
    this.hash = seed | 0;
  }

  /** Makes this hasher continue from where `other` is. */
  copyFrom(other: Murmur3): this {
    this.hash = other.hash;
    this.tail = other.tail;
    this.tailBits = other.tailBits;
    this.length = other.length;
    return this;
  }

  /** Feeds the UTF-8 bytes of `text`. */
  write(text: string): this {
    absorb(this, text);
    return this;
  }

  /** The hash of everything fed, as an unsigned 32-bit integer. */
  finish(): number {
    let hash = this.hash;
    if (this.tailBits > 0) hash ^= mixBlock(this.tail);
    return finalize(hash ^ this.length);
  }
}

function mixBlock(block: number): number {
  const scrambled = Math.imul(block, C1);
  return Math.imul((scrambled << 15) | (scrambled >>> 17), C2);
}

function mixHash(hash: number, block: number): number {
  const mixed = hash ^ mixBlock(block);
  return (Math.imul((mixed << 13) | (mixed >>> 19), 5) + 0xe6546b64) | 0;
}

function finalize(hash: number): number {
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** The UTF-8 bytes of a code point of at least U+0080, little-endian in one number. */
function utf8Bytes(code: number): number {
  if (code < 0x800) return (0xc0 | (code >> 6)) | ((0x80 | (code & 0x3f)) << 8);
  if (code < 0x10000) {
    return (0xe0 | (code >> 12)) | ((0x80 | ((code >> 6) & 0x3f)) << 8) | ((0x80 | (code & 0x3f)) << 16);
  }
  return (
    (0xf0 | (code >> 18)) |
    ((0x80 | ((code >> 12) & 0x3f)) << 8) |
    ((0x80 | ((code >> 6) & 0x3f)) << 16) |
    ((0x80 | (code & 0x3f)) << 24)
  );
}

/** How many UTF-8 bytes a code point takes (it is at least U+0080). */
function utf8Length(code: number): number {
  return code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
}

/** Feeds the UTF-8 encoding of `text` into `hasher`. */
function absorb(hasher: Murmur3, text: string): void {
  let hash = hasher.hash;
  let tail = hasher.tail;
  let bits = hasher.tailBits;
  let length = hasher.length;
  const end = text.length;
  let index = 0;
  while (index < end) {
    if (index + 4 <= end) {
      const a = text.charCodeAt(index);
      const b = text.charCodeAt(index + 1);
      const c = text.charCodeAt(index + 2);
      const d = text.charCodeAt(index + 3);
      // Four ASCII characters are four bytes: one block, whatever the tail holds.
      if ((a | b | c | d) < 0x80) {
        const word = a | (b << 8) | (c << 16) | (d << 24);
        if (bits === 0) {
          hash = mixHash(hash, word);
        } else {
          hash = mixHash(hash, tail | (word << bits));
          tail = word >>> (32 - bits);
        }
        index += 4;
        length += 4;
        continue;
      }
    }
    let code = text.charCodeAt(index++);
    let bytes: number;
    let count: number;
    if (code < 0x80) {
      bytes = code;
      count = 1;
    } else {
      if (code >= 0xd800 && code <= 0xdfff) code = surrogateCodePoint(text, index - 1, code);
      if (code > 0xffff) index++;
      bytes = utf8Bytes(code);
      count = utf8Length(code);
    }
    length += count;
    for (; count > 0; count--) {
      tail |= (bytes & 0xff) << bits;
      bytes >>>= 8;
      bits += 8;
      if (bits === 32) {
        hash = mixHash(hash, tail);
        tail = 0;
        bits = 0;
      }
    }
  }
  hasher.hash = hash;
  hasher.tail = tail;
  hasher.tailBits = bits;
  hasher.length = length;
}

/** The code point of a surrogate at `text[index]`: the pair's, or U+FFFD for a lone surrogate. */
function surrogateCodePoint(text: string, index: number, high: number): number {
  if (high <= 0xdbff && index + 1 < text.length) {
    const low = text.charCodeAt(index + 1);
    if (low >= 0xdc00 && low <= 0xdfff) return ((high - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
  }
  return 0xfffd;
}

/** murmur3_x86_32 of the UTF-8 bytes of `text`, as an unsigned 32-bit integer. */
export function murmur3(text: string, seed = 0): number {
  return new Murmur3(seed).write(text).finish();
}

/** The hasher state after `"<flag>/"`: the part of every bucket computation that only depends on the flag. */
export function bucketPrefix(flag: string): Murmur3 {
  return new Murmur3(0).write(flag).write("/");
}

const scratch = new Murmur3(0);

/** The bucket of `targetingKey`, continuing from a flag's {@link bucketPrefix}; allocates nothing. */
export function bucketAfter(prefix: Murmur3, targetingKey: string): number {
  return scratch.copyFrom(prefix).write(targetingKey).finish() % BUCKETS;
}

/** The bucket of `targetingKey` for `flag`, in `0..100000`: murmur3 of `"<flag>/<targetingKey>"` mod 100000. */
export function bucketOf(flag: string, targetingKey: string): number {
  return bucketAfter(bucketPrefix(flag), targetingKey);
}
