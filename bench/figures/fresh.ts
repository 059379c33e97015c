/**
 * `measure` on a server started for it alone and stopped after. The fs and metadata figures start
 * every run's processes afresh, as bench:compare does: two processes of one build can differ.
 */
export async function onFresh<S extends { stop(): Promise<void> }, T>(
  start: () => Promise<S>,
  measure: (server: S) => Promise<T>,
): Promise<T> {
  const server = await start();
  try {
    return await measure(server);
  } finally {
    await server.stop();
  }
}

/** The second of two runs of `f`: the first pays for a fresh process's compilation. */
export async function afterWarmUp<T>(f: () => Promise<T>): Promise<T> {
  await f();
  return f();
}
