/** The S3 metadata codec on its own: no S3 server, only what goes onto an object and what comes back. */
import { describe, expect, it } from 'vitest';
import type { BlobMeta } from '../../src/storage/blob-store.js';
import { fromTags, fromUserMetadata, toTags, toUserMetadata } from '../../src/storage/s3-metadata.js';

const meta = (extra: Partial<BlobMeta> = {}): BlobMeta => ({
  tenant: '',
  filename: 'a.txt',
  purpose: 'assistants',
  createdAt: 1_750_000_000,
  expiresAt: null,
  bytes: 42,
  ...extra,
});

/** 1024 bytes of UTF-8 in 256 four-byte characters: the longest filename, and the worst for base64. */
const EMOJI_1024 = '😀'.repeat(256);

/** Characters S3 allows in a tag value (and, a subset of ASCII, in a header). */
const TAG_CHARS = /^[A-Za-z0-9 +\-=._:/@]*$/;

const userMetadataSize = (m: Record<string, string>) =>
  Object.entries(m).reduce((n, [k, v]) => n + k.length + v.length, 0);

/** Both forms, each written and read back for an object of `meta.bytes` bytes. */
const roundTrips = (m: BlobMeta) => ({
  userMetadata: fromUserMetadata(toUserMetadata(m), m.bytes),
  tags: fromTags(toTags(m), m.bytes),
});

describe('S3 metadata codec', () => {
  const cases: [string, BlobMeta][] = [
    ['a plain name that never expires', meta()],
    ['an expiry time', meta({ expiresAt: 1_750_003_600 })],
    ['a named tenant', meta({ tenant: 'team-a', expiresAt: 1_750_003_600 })],
    ['accents, CJK, right-to-left and combining marks', meta({ filename: 'naïve 報告 تقرير e\u0301.pdf' })],
    ['emoji', meta({ filename: 'big 📦 🧪.jsonl' })],
    [
      'characters that mean something in headers, paths, JSON and base64',
      meta({ filename: 'a/b\\c "q" \'s\' %20 + = ? # & ; , : @ ~.txt' }),
    ],
    ['an empty filename', meta({ filename: '' })],
    ['a 1024-byte all-emoji filename', meta({ filename: EMOJI_1024, expiresAt: 1_750_003_600 })],
    [
      'a 1024-byte all-emoji filename and a named tenant',
      meta({ filename: EMOJI_1024, expiresAt: 1_750_003_600, tenant: 'team-a' }),
    ],
    ['times at the edges', meta({ createdAt: 0, expiresAt: Number.MAX_SAFE_INTEGER })],
    ['an empty object', meta({ bytes: 0 })],
  ];

  it.each(cases)('reads back what it writes, in both forms: %s', (_, m) => {
    expect(roundTrips(m)).toEqual({ userMetadata: m, tags: m });
  });

  it.each(cases)('writes only what S3 takes, in both forms: %s', (_, m) => {
    const userMetadata = toUserMetadata(m);
    expect(userMetadataSize(userMetadata)).toBeLessThanOrEqual(2048);
    for (const [key, value] of Object.entries(userMetadata)) {
      // Header names are lower case (HeadObject answers them so), values printable ASCII.
      expect(key).toMatch(/^[a-z0-9-]+$/);
      expect(value).toMatch(/^[\x20-\x7e]*$/);
    }
    const tags = toTags(m);
    expect(tags.length).toBeLessThanOrEqual(10);
    expect(new Set(tags.map((t) => t.Key)).size).toBe(tags.length);
    for (const { Key, Value } of tags) {
      expect(Key!.length).toBeLessThanOrEqual(128);
      expect(Value!.length).toBeLessThanOrEqual(256);
      expect(Value).toMatch(TAG_CHARS);
    }
  });

  it('writes the form earlier releases wrote, field for field', () => {
    const m = meta({ filename: 'ü.txt', expiresAt: 1_750_003_600, tenant: 'team-a' });
    const fields = {
      'filename-b64': 'w7wudHh0',
      purpose: 'assistants',
      'created-at': '1750000000',
      'expires-at': '1750003600',
      tenant: 'team-a',
    };
    expect(toUserMetadata(m)).toEqual(fields);
    expect(toTags(m)).toEqual([
      { Key: 'purpose', Value: 'assistants' },
      { Key: 'created-at', Value: '1750000000' },
      { Key: 'expires-at', Value: '1750003600' },
      { Key: 'tenant', Value: 'team-a' },
      { Key: 'filename-b64-0', Value: 'w7wudHh0' },
    ]);
  });

  it('leaves out expires-at for a file that never expires, and tenant for the default tenant', () => {
    expect(Object.keys(toUserMetadata(meta()))).toEqual(['filename-b64', 'purpose', 'created-at']);
    expect(toTags(meta()).map((t) => t.Key)).toEqual(['purpose', 'created-at', 'filename-b64-0']);
  });

  it('splits a long filename over tags of 256 characters: six for 1024 bytes, nine tags in all', () => {
    const tags = toTags(meta({ filename: EMOJI_1024, expiresAt: 1_750_003_600 }));
    const chunks = tags.filter((t) => t.Key!.startsWith('filename-b64-'));
    expect(chunks.map((t) => t.Key)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `filename-b64-${i}`));
    expect(chunks.map((t) => t.Value!.length)).toEqual([256, 256, 256, 256, 256, 1366 - 5 * 256]);
    expect(tags).toHaveLength(9);
  });

  it('gives an empty filename its one empty tag, so the tag form is still recognised', () => {
    expect(toTags(meta({ filename: '' })).find((t) => t.Key === 'filename-b64-0')).toEqual({
      Key: 'filename-b64-0',
      Value: '',
    });
  });

  it('reads tags in any order, next to tags that are not its own', () => {
    const m = meta({ filename: EMOJI_1024, expiresAt: 1_750_003_600 });
    const tags = [{ Key: 'lifecycle', Value: 'keep' }, ...toTags(m).reverse()];
    expect(fromTags(tags, m.bytes)).toEqual(m);
    expect(fromUserMetadata({ ...toUserMetadata(m), 'other-app': 'x' }, m.bytes)).toEqual(m);
  });

  it("takes bytes from the object's size, not from the metadata", () => {
    expect(toUserMetadata(meta())).not.toHaveProperty('bytes');
    expect(fromUserMetadata(toUserMetadata(meta({ bytes: 1 })), 7)?.bytes).toBe(7);
    expect(fromTags(toTags(meta({ bytes: 1 })), 7)?.bytes).toBe(7);
  });

  it('refuses a filename too long for user metadata (2 KB) or for ten tags, and a purpose S3 cannot carry', () => {
    // 1600 bytes: 2134 base64url characters.
    expect(() => toUserMetadata(meta({ filename: 'x'.repeat(1600) }))).toThrow("exceeds S3's 2048-byte limit");
    // 1200 bytes: 1600 characters, seven tags, next to purpose, created-at, expires-at and tenant.
    const long = meta({ filename: 'x'.repeat(1200), expiresAt: 1, tenant: 'team-a' });
    expect(() => toTags(long)).toThrow('metadata needs 11 tags, S3 allows 10');
    for (const purpose of ['', 'fine-tuning\n', 'ünï', '<script>', 'a'.repeat(257)]) {
      expect(() => toUserMetadata(meta({ purpose })), purpose).toThrow('cannot be stored as S3 metadata');
      expect(() => toTags(meta({ purpose })), purpose).toThrow('cannot be stored as S3 metadata');
    }
  });

  it('reads nothing from objects that do not carry its fields, or carry them broken', () => {
    const fields = toUserMetadata(meta({ expiresAt: 1_750_003_600 }));
    const without = (key: string) => Object.fromEntries(Object.entries(fields).filter(([k]) => k !== key));
    expect(fromUserMetadata({}, 1)).toBeUndefined();
    expect(fromUserMetadata(without('filename-b64'), 1)).toBeUndefined();
    expect(fromUserMetadata(without('purpose'), 1)).toBeUndefined();
    expect(fromUserMetadata(without('created-at'), 1)).toBeUndefined();
    expect(fromUserMetadata({ ...fields, purpose: '' }, 1)).toBeUndefined();
    for (const time of ['soon', '1.5', '1e400', String(2 ** 53)]) {
      expect(fromUserMetadata({ ...fields, 'created-at': time }, 1), time).toBeUndefined();
      expect(fromUserMetadata({ ...fields, 'expires-at': time }, 1), time).toBeUndefined();
    }

    expect(fromTags([], 1)).toBeUndefined();
    expect(fromTags([{ Key: 'lifecycle', Value: 'keep' }], 1)).toBeUndefined();
    // User metadata's single filename key is not the tag form.
    expect(
      fromTags(
        Object.entries(fields).map(([Key, Value]) => ({ Key, Value })),
        1,
      ),
    ).toBeUndefined();
    // The chunks are read from filename-b64-0 on: without it, the tags are not ours.
    const tags = toTags(meta({ filename: EMOJI_1024 })).filter((t) => t.Key !== 'filename-b64-0');
    expect(fromTags(tags, 1)).toBeUndefined();
  });
});
