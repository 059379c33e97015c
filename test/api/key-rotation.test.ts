/**
 * API keys rotated without a restart: the keys file is laid out as the kubelet mounts a Secret
 * (`api-keys` -> `..data/api-keys`, `..data` -> a timestamped folder), and a rotation writes a new
 * folder and swaps `..data` atomically, as the kubelet does.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, tempDir, type Gateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { sampleValue, scrape } from '../helpers/metrics.js';
import { eventually } from '../helpers/wait.js';

const OLD_KEY = 'sk-rotation-old-0123456789';
const NEW_KEY = 'sk-rotation-new-0123456789';
const LATER_KEY = 'sk-rotation-later-0123456789';
const RELOADS = 'files_gateway_api_keys_reloads_total';

/** A Secret volume as the kubelet lays it out, holding `text` as its `api-keys` file. */
class SecretMount {
  #generation = 0;
  constructor(readonly dir: string) {}

  get file(): string {
    return path.join(this.dir, 'api-keys');
  }

  async create(text: string): Promise<void> {
    const data = await this.#writeGeneration(text);
    await fs.symlink(data, path.join(this.dir, '..data'));
    await fs.symlink(path.join('..data', 'api-keys'), this.file);
  }

  /** A new timestamped folder, then `..data` swapped to it with a rename (atomic), the old folder removed. */
  async update(text: string): Promise<void> {
    const previous = await fs.readlink(path.join(this.dir, '..data'));
    const data = await this.#writeGeneration(text);
    const tmp = path.join(this.dir, '..data_tmp');
    await fs.symlink(data, tmp);
    await fs.rename(tmp, path.join(this.dir, '..data'));
    await fs.rm(path.join(this.dir, previous), { recursive: true, force: true });
  }

  async #writeGeneration(text: string): Promise<string> {
    this.#generation += 1;
    const name = `..2024_01_01_00_00_0${this.#generation}.${process.pid}`;
    await fs.mkdir(path.join(this.dir, name));
    await fs.writeFile(path.join(this.dir, name, 'api-keys'), text);
    return name;
  }
}

describe('API keys rotated in a mounted Secret', () => {
  let gw: Gateway;
  let mount: SecretMount;
  const logText: string[] = [];
  const logLines: { level: number; msg?: string; keys?: number; tenants?: number; variable?: string }[] = [];

  const status = async (key: string): Promise<number> =>
    (await request(`${gw.url}/v1/files`, { headers: { authorization: `Bearer ${key}` } })).status;
  const reloads = async (outcome: string): Promise<number> => sampleValue(await scrape(gw.url), RELOADS, { outcome });

  beforeAll(async () => {
    mount = new SecretMount(await tempDir('files-gateway-secret-'));
    await mount.create(`# rotation test\n${OLD_KEY} team-a\n`);
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) {
          logText.push(line);
          logLines.push(JSON.parse(line));
        }
        done();
      },
    });
    gw = await startGateway({ apiKeysFile: mount.file, log: pino({ level: 'info' }, sink) });
  });
  afterAll(async () => {
    await gw?.close();
    if (mount) await fs.rm(mount.dir, { recursive: true, force: true });
  });

  it('serves the keys of the file it started with', async () => {
    expect(await status(OLD_KEY)).toBe(200);
    expect(await status(NEW_KEY)).toBe(401);
  });

  it('takes a rotated key without a restart, and drops the old one', async () => {
    const before = await reloads('success');
    await mount.update(`${NEW_KEY} team-a\n${LATER_KEY} team-b\n`);
    await eventually(async () => (await status(OLD_KEY)) === 401 && (await status(NEW_KEY)) === 200, 8_000);
    expect(await status(LATER_KEY)).toBe(200);
    expect(await reloads('success')).toBe(before + 1);
    const reloaded = logLines.find((l) => l.msg === 'API keys reloaded');
    expect(reloaded).toMatchObject({ level: 30, keys: 2, tenants: 2, variable: 'FILES_API_KEYS_FILE' });
  });

  it('keeps the keys in force when the new file holds no key, and counts the error', async () => {
    const errors = await reloads('error');
    const successes = await reloads('success');
    await mount.update('# all keys removed by mistake\n');
    await eventually(async () => (await reloads('error')) === errors + 1, 8_000);
    expect(await status(NEW_KEY)).toBe(200);
    expect(await status(LATER_KEY)).toBe(200);
    expect(await status(OLD_KEY)).toBe(401);
    expect(await reloads('success')).toBe(successes);
    const warning = logLines.find((l) => l.level === 40 && l.variable === 'FILES_API_KEYS_FILE');
    expect(warning).toMatchObject({ msg: expect.stringContaining('not reloaded') });
    expect(JSON.stringify(warning)).toContain('holds no key');
  });

  it('keeps the keys in force when the new file has a bad entry', async () => {
    const errors = await reloads('error');
    await mount.update(`${OLD_KEY} team-a\nshort\n`);
    await eventually(async () => (await reloads('error')) === errors + 1, 8_000);
    expect(await status(NEW_KEY)).toBe(200);
    expect(await status(OLD_KEY)).toBe(401);
  });

  it('recovers when a good file follows a bad one', async () => {
    await mount.update(`${OLD_KEY} team-a\n`);
    await eventually(async () => (await status(OLD_KEY)) === 200 && (await status(NEW_KEY)) === 401, 8_000);
  });

  it('never logs a key', () => {
    expect(logText.length).toBeGreaterThan(0);
    for (const line of logText) {
      for (const key of [OLD_KEY, NEW_KEY, LATER_KEY]) expect(line).not.toContain(key);
    }
  });
});
