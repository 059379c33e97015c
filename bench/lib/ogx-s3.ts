/**
 * OGX 0.8.0 (LlamaStack from 0.8 on) serving the Files API with its own `remote::s3` provider, in
 * the Debian trixie chroot that scripts/llamastack-e2e.sh sets up, started the way the end-to-end
 * tests start it (test/llamastack/stack.ts). The provider (ogx/providers/remote/files/s3) calls
 * boto3's put_object/get_object with the whole file in memory and keeps its metadata in SQLite.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startStack, unavailable } from '../../test/llamastack/stack.js';
import type { S3Target } from './s3.js';

export interface OgxS3 {
  url: string;
  /** The Python server process (uvicorn, one worker: it serves in the process it starts in). */
  pid: number;
  logs(): string;
  /** Whether it answers its health route within 5 s. */
  answers(): Promise<boolean>;
  /**
   * SIGABRT, upon which Python's faulthandler (enabled at start) prints every thread's stack; resolves
   * with that dump once the process is gone. For a server that has stopped answering.
   */
  abortWithStacks(): Promise<string>;
  stop(): Promise<void>;
}

/** Why OGX cannot run here (no chroot, not root), or undefined when it can. */
export const ogxUnavailable = (): string | undefined => unavailable();

/** OGX with `files: remote::s3` on `bucket` of `s3` (the bucket must exist), its metadata in its SQLite store. */
export async function startOgxS3(s3: S3Target, bucket: string): Promise<OgxS3> {
  const stack = await startStack({
    flavor: 'ogx',
    files: [
      {
        provider_id: 's3',
        provider_type: 'remote::s3',
        // S3FilesImplConfig of OGX 0.8.0
        config: {
          bucket_name: bucket,
          region: s3.region,
          aws_access_key_id: s3.accessKeyId,
          aws_secret_access_key: s3.secretAccessKey,
          endpoint_url: s3.endpoint,
          auto_create_bucket: false,
          metadata_store: { table_name: 's3_files_metadata', backend: 'sql_default' },
        },
      },
    ],
    env: { PYTHONFAULTHANDLER: '1' },
  });
  const pid = pythonProcess(stack.pid);
  return {
    url: stack.url,
    pid,
    logs: stack.logs,
    answers: () =>
      fetch(`${stack.url}/v1/health`, { signal: AbortSignal.timeout(5000) }).then(
        (r) => r.ok,
        () => false,
      ),
    async abortWithStacks() {
      const before = stack.logs().length;
      process.kill(pid, 'SIGABRT');
      for (let waited = 0; waited < 10_000 && existsSync(`/proc/${pid}/stat`); waited += 100) await sleep(100);
      return stack.logs().slice(before);
    },
    stop: stack.stop,
  };
}

/**
 * The Python process at or below `pid`: the stack is started as `chroot … env -i … python3`, each
 * of which execs the next, so it is normally `pid` itself; a launcher that forks would leave it a
 * descendant.
 */
function pythonProcess(pid: number): number {
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (readFileSync(`/proc/${next}/comm`, 'utf8').trim().startsWith('python')) return next;
    for (const task of readdirSync(`/proc/${next}/task`)) {
      const children = readFileSync(`/proc/${next}/task/${task}/children`, 'utf8').trim();
      if (children) queue.push(...children.split(/\s+/).map(Number));
    }
  }
  throw new Error(`no python process at or below pid ${pid}`);
}
