import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { apiKeysOfFile, ConfigError, type ApiKey } from '../config.js';
import type { ApiKeyRing } from './auth.js';

const VARIABLE = 'FILES_API_KEYS_FILE';
/** Several events come with one change (a Secret update swaps a symlink and removes a folder). */
const SETTLE_MS = 100;

export interface ApiKeysFileOptions {
  /** The keys file (FILES_API_KEYS_FILE). */
  file: string;
  /** The keys of FILES_API_KEYS, in force after the file's. */
  fromEnv: readonly ApiKey[];
  ring: ApiKeyRing;
  log: Logger;
  /** Told the outcome of every re-read of changed content. */
  onReload?: (outcome: 'success' | 'error') => void;
}

/** How often the file is read even without a change event. */
const POLL_MS = 10_000;

export interface ApiKeysFileWatcher {
  /** Reads the file now and applies it if its content changed (what the watch and the poll call). */
  check(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Keeps `ring` in step with a keys file. A Kubernetes Secret volume is updated in place: the
 * kubelet writes a new timestamped folder and swaps the `..data` symlink the file points through,
 * so the file's FOLDER is watched, not the file, and the file is re-read by name. fs.watch can
 * miss such swaps, so the file is also read every POLL_MS; content that did not change is not
 * parsed again.
 *
 * New content is parsed with the start-up rules (config.ts). If it is unreadable, holds no key or
 * has a bad entry, the keys in force stay and a warning names the variable and the reason (never a
 * key). The same bad content is reported once, not at every poll.
 */
export function watchApiKeysFile(opts: ApiKeysFileOptions): ApiKeysFileWatcher {
  const { file, fromEnv, ring, log } = opts;
  let seen: string | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const fingerprint = async (): Promise<{ id: string; text?: string; error?: string }> => {
    try {
      const text = await readFile(file, 'utf8');
      return { id: `ok:${createHash('sha256').update(text, 'utf8').digest('hex')}`, text };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      return { id: `error:${code}`, error: `cannot read ${file}: ${code}` };
    }
  };

  const apply = async (): Promise<void> => {
    const read = await fingerprint();
    if (closed || read.id === seen) return;
    seen = read.id;
    try {
      if (read.error !== undefined) throw new ConfigError(VARIABLE, read.error);
      const keys = apiKeysOfFile(file, read.text!, fromEnv);
      ring.replace(keys);
      const tenants = new Set(keys.filter((k) => !k.service).map((k) => k.tenant)).size;
      log.info(
        { variable: VARIABLE, keys: keys.length, tenants, serviceKeys: keys.filter((k) => k.service).length },
        'API keys reloaded',
      );
      opts.onReload?.('success');
    } catch (err) {
      const reason = err instanceof ConfigError ? err.message : String(err);
      log.warn({ variable: VARIABLE, reason }, 'API keys file not reloaded: the keys in force stay');
      opts.onReload?.('error');
    }
  };

  const check = async (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await apply();
        } while (again && !closed);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  // The content in force at start-up (config.ts read it): only a change is a reload.
  const first = fingerprint().then((read) => {
    seen ??= read.id;
  });

  let settle: NodeJS.Timeout | undefined;
  const changed = () => {
    if (closed) return;
    clearTimeout(settle);
    settle = setTimeout(() => void first.then(check), SETTLE_MS);
    settle.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(file), { persistent: false }, changed);
    watcher.on('error', (err) => {
      log.warn({ variable: VARIABLE, reason: String(err) }, 'cannot watch the API keys folder: polling it only');
      watcher?.close();
    });
  } catch (err) {
    log.warn({ variable: VARIABLE, reason: String(err) }, 'cannot watch the API keys folder: polling it only');
  }
  const poll = setInterval(() => void first.then(check), POLL_MS);
  poll.unref();

  return {
    check: () => first.then(check),
    async close() {
      closed = true;
      clearInterval(poll);
      clearTimeout(settle);
      watcher?.close();
      await first;
      await running;
    },
  };
}
