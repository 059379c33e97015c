/**
 * integrations/llamastack/Containerfile: a LlamaStack image with the provider's wheel installed.
 * Checked statically (no container engine here): both linters, that it installs the wheel the
 * package's build names, without pulling other packages, and runs as a numeric non-root user.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const DIR = path.join(ROOT, 'integrations', 'llamastack');
const FILE = path.join(DIR, 'Containerfile');
const TEXT = fs.readFileSync(FILE, 'utf8');

describe('the LlamaStack provider Containerfile', () => {
  it('passes dockerfilelint and the dockerfile-utils validator', async () => {
    const { stdout } = await promisify(execFile)(path.join(ROOT, 'node_modules', '.bin', 'dockerfilelint'), [FILE]);
    expect(stdout).toContain('Issues: None found');
    expect(validate(TEXT)).toEqual([]);
  });

  it('installs the wheel the package builds, with no other package, and checks that it imports', () => {
    const name = /^name = "([^"]+)"/m.exec(fs.readFileSync(path.join(DIR, 'pyproject.toml'), 'utf8'))![1]!;
    const wheel = `${name.replace(/-/g, '_')}-*.whl`;
    expect(TEXT).toMatch(/^COPY dist\/ \/tmp\/files-gateway-wheels\/$/m);
    expect(TEXT).toContain(`pip install --no-cache-dir --no-deps /tmp/files-gateway-wheels/${wheel}`);
    expect(TEXT).toContain('import files_gateway_llamastack.provider');
  });

  it('gives the image back to a numeric non-root user', () => {
    const users = [...TEXT.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Containerfile's own build-argument reference, literally
    expect(users.at(-1)).toBe('${USER_ID}');
    expect(/^ARG USER_ID=(\d+)$/m.exec(TEXT)?.[1]).toMatch(/^[1-9]\d*$/);
  });
});
