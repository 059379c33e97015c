/**
 * Handle every item a query returns, a batch at a time, until a batch comes back short: for the
 * sweeps, whose handled items drop out of the next query's result. Returns how many were handled.
 */
export async function drain<T>(
  next: (limit: number) => Promise<T[]>,
  handle: (item: T) => Promise<void>,
  batchSize: number,
): Promise<number> {
  let handled = 0;
  for (;;) {
    const batch = await next(batchSize);
    for (const item of batch) {
      await handle(item);
      handled++;
    }
    if (batch.length < batchSize) return handled;
  }
}
