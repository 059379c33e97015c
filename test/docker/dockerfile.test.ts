/**
 * No container engine runs here, so the image is checked statically: two Dockerfile linters, the
 * policies a reviewer checks (numeric non-root USER, exec-form CMD, production-only dependencies),
 * and that everything the stages COPY exists and survives .dockerignore, so `docker build` cannot
 * fail on a missing path.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { validate } from 'dockerfile-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SHIPPED_GLIBC_TUNABLES, SHIPPED_NODE_FLAGS } from '../helpers/process.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const ROOT = path.resolve(import.meta.dirname, '..', '..');
const DOCKERFILE = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const LINT = path.join(ROOT, 'node_modules', '.bin', 'dockerfilelint');

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  name: string | undefined;
  from: string;
  workdir: string;
  instructions: Instruction[];
}

/** Joins continuation lines and splits the Dockerfile into stages of instructions. */
function parseStages(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1).trim()} ${lines[++i]!.trim()}`;
    const [keyword = '', ...rest] = line.split(/\s+/);
    const ins = { keyword: keyword.toUpperCase(), args: rest.join(' '), line: start };
    if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ name: m[2], from: m[1]!, workdir: '/', instructions: [] });
    } else if (stages.length > 0) {
      const stage = stages.at(-1)!;
      if (ins.keyword === 'WORKDIR') stage.workdir = path.posix.resolve(stage.workdir, ins.args);
      stage.instructions.push(ins);
    }
  }
  return stages;
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}
function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
    });
}

/** A minimal .dockerignore matcher: the file uses only plain names and `*` globs. */
function dockerIgnored(rel: string): boolean {
  const patterns = fs
    .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const parts = rel.split('/');
  return patterns.some((p) => {
    const re = new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
    // A pattern names a path from the context root; it also excludes everything under it.
    return parts.some((_, n) => re.test(parts.slice(0, n + 1).join('/')));
  });
}

const stages = parseStages(DOCKERFILE);
const runtime = stages.at(-1)!;

describe('Dockerfile lint', () => {
  it('passes dockerfilelint', async () => {
    const { stdout } = await run(LINT, ['Dockerfile'], { cwd: ROOT }).catch((err: { stdout: string }) => {
      throw new Error(`dockerfilelint found issues:\n${err.stdout}`);
    });
    expect(stdout).toContain('Issues: None found');
  });

  it('dockerfilelint does catch problems (so the clean result means something)', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dockerfilelint-'));
    try {
      fs.writeFileSync(
        path.join(tmp, 'Dockerfile'),
        'FROM node:latest\nMAINTAINER someone\nEXPOSE 80000\nCMD node x.js\n',
      );
      await expect(run(LINT, ['Dockerfile'], { cwd: tmp })).rejects.toMatchObject({
        stdout: expect.stringMatching(/latest/i),
      });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('passes the dockerfile-utils validator (the parser behind the Dockerfile language server)', () => {
    const problems = validate(DOCKERFILE).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(problems).toEqual([]);
    expect(validate('FROM node:22\nCMD ["a"]\nCMD ["b"]\n').length).toBeGreaterThan(0);
  });
});

describe('Dockerfile policy', () => {
  it('is multi-stage: a build stage, a production-dependencies stage, a runtime stage', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'deps', undefined]);
    const runs = (s: Stage) =>
      s.instructions
        .filter((i) => i.keyword === 'RUN')
        .map((i) => i.args)
        .join('\n');
    expect(runs(stages[0]!)).toMatch(/npm ci\b/);
    expect(runs(stages[0]!)).toMatch(/npm run build/);
    expect(runs(stages[1]!)).toMatch(/npm ci --omit=dev/);
    // better-sqlite3 is native: the production install must run its install script.
    expect(runs(stages[1]!)).not.toMatch(/--ignore-scripts/);
  });

  it('bases every stage on a tagged Node.js 22 image, never :latest', () => {
    for (const s of stages) {
      expect(s.from).toMatch(/nodejs-22|node:22/);
      expect(s.from).toMatch(/:[^/]+$/);
      expect(s.from).not.toMatch(/:latest$/);
    }
  });

  it('runs as a numeric non-root user (so runAsNonRoot can be verified by the kubelet)', () => {
    const users = runtime.instructions.filter((i) => i.keyword === 'USER');
    expect(users.at(-1)!.args).toMatch(/^[1-9]\d*(:0)?$/);
  });

  it('makes /data group-0 writable for an arbitrary OpenShift UID', () => {
    const runs = runtime.instructions
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(runs).toMatch(/mkdir -p \/data/);
    expect(runs).toMatch(/chown \d+:0 \/data/);
    expect(runs).toMatch(/chmod (0?775|g=u|g\+rwx?) \/data/);
    // Copied files belong to group 0 too, or a random UID could not read them when umask is strict.
    for (const i of runtime.instructions.filter((x) => x.keyword === 'COPY'))
      expect(i.args, `line ${i.line}`).toMatch(/--chown=\d+:0\b/);
  });

  it('starts node directly in exec form with the node flags `npm start` uses, listens on 8080, carries OCI labels', async () => {
    const cmd = runtime.instructions.filter((i) => i.keyword === 'CMD');
    expect(cmd).toHaveLength(1);
    expect(JSON.parse(cmd[0]!.args)).toEqual(['node', ...SHIPPED_NODE_FLAGS, 'dist/main.js', 'serve']);
    // node refuses to start on a flag it does not know: this one knows them.
    await expect(run(process.execPath, [...SHIPPED_NODE_FLAGS, '-e', '0'])).resolves.toBeDefined();
    expect(runtime.instructions.some((i) => i.keyword === 'ENTRYPOINT')).toBe(false);
    expect(runtime.instructions.find((i) => i.keyword === 'EXPOSE')?.args).toBe('8080');
    const labels = runtime.instructions
      .filter((i) => i.keyword === 'LABEL')
      .map((i) => i.args)
      .join(' ');
    for (const key of ['title', 'description', 'version', 'revision', 'licenses']) {
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
    }
  });

  it("tunes glibc's allocator as `npm start` does, with tunables this glibc knows", async () => {
    const env = Object.fromEntries(
      runtime.instructions
        .filter((i) => i.keyword === 'ENV')
        .flatMap((i) => i.args.split(/\s+/))
        .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
    );
    expect(env.GLIBC_TUNABLES).toBe(SHIPPED_GLIBC_TUNABLES);
    // glibc ignores a tunable it does not know, silently: a misspelt name would tune nothing.
    const loader = (process.report.getReport() as { sharedObjects: string[] }).sharedObjects.find((o) =>
      /\/ld-linux[^/]*\.so/.test(o),
    );
    expect(loader, 'node runs on glibc').toBeDefined();
    const { stdout: known } = await run(loader!, ['--list-tunables']);
    const names = SHIPPED_GLIBC_TUNABLES.split(':').map((t) => t.slice(0, t.indexOf('=')));
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(known).toContain(`${name}:`);
  });

  it('puts no dev tooling, tests or sources into the runtime image', () => {
    const sources = copies(runtime).flatMap((c) => c.sources.map((s) => path.posix.basename(s)));
    expect(sources.sort()).toEqual(['dist', 'node_modules', 'openapi', 'package.json']);
    const nodeModules = copies(runtime).find((c) => c.sources.some((s) => s.endsWith('node_modules')))!;
    expect(nodeModules.from).toBe('deps');
  });
});

describe('what the image copies exists', () => {
  // Build into a scratch folder, not dist/: other test files run the built gateway concurrently.
  let out: string;
  beforeAll(async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'files-gateway-build-'));
    await run('npm', ['run', 'build', '--', '--outDir', path.join(out, 'dist')], { cwd: ROOT });
  }, 180_000);
  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  /** Where a path inside a build stage comes from in this repository after `npm run build`. */
  function local(stage: Stage, p: string): string {
    const rel = path.posix.relative(stage.workdir, path.posix.resolve(stage.workdir, p));
    if (rel === 'dist' || rel.startsWith('dist/')) return path.join(out, rel);
    return path.join(ROOT, rel);
  }

  it('every build-context path any stage copies exists and is not excluded by .dockerignore', () => {
    const fromContext = stages.flatMap((s) =>
      copies(s)
        .filter((c) => c.from === undefined)
        .flatMap((c) => c.sources),
    );
    expect(fromContext.length).toBeGreaterThan(0);
    for (const src of fromContext) {
      expect(fs.existsSync(path.join(ROOT, src)), `${src} exists`).toBe(true);
      expect(dockerIgnored(src.replace(/\/$/, '')), `${src} is not in .dockerignore`).toBe(false);
    }
  });

  it('every path the runtime stage copies from an earlier stage exists after npm run build / npm ci', () => {
    for (const c of copies(runtime).filter((x) => x.from !== undefined)) {
      const stage = stages.find((s) => s.name === c.from);
      expect(stage, `stage ${c.from}`).toBeDefined();
      for (const src of c.sources) expect(fs.existsSync(local(stage!, src)), `${c.from}:${src}`).toBe(true);
    }
  });

  it('the CMD entry point and the runtime dependencies resolve from what was copied', () => {
    expect(fs.existsSync(path.join(out, 'dist', 'main.js'))).toBe(true);
    // package.json is copied because "type": "module" makes dist/*.js ESM.
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).type).toBe('module');
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies))
      expect(() => require.resolve(`${dep}/package.json`), dep).not.toThrow();
    expect(fs.existsSync(path.join(ROOT, 'openapi', 'openapi.yaml')), 'openapi/openapi.yaml').toBe(true);
  });
});
