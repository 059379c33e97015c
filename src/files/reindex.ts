import type { Catalog } from '../catalog/catalog.js';
import type { BlobStore } from '../storage/blob-store.js';

/**
 * Rebuild the catalog from the store alone (invariant 3): every blob carries the metadata its row
 * needs. Idempotent: rows are upserted, so running it twice, or over a catalog that is only partly
 * lost, gives the same catalog. Returns how many files were restored; `onProgress` hears the running
 * count every `progressEvery` files and once at the end.
 */
export async function reindex(
  store: BlobStore,
  catalog: Catalog,
  onProgress: (restored: number) => void = () => {},
  progressEvery = 1000,
): Promise<number> {
  let restored = 0;
  for await (const { id, meta } of store.list()) {
    // A blob's metadata is its row, tenant included, less the id.
    await catalog.upsert({ id, ...meta });
    restored++;
    if (restored % progressEvery === 0) onProgress(restored);
  }
  onProgress(restored);
  return restored;
}
