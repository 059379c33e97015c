import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferedLogDestination, openLogger } from '../src/log.js';

const KiB = 1024;

describe('the server log', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const undo of cleanup.splice(0)) undo();
  });
  const tempPath = (name: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'files-gateway-log-'));
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, name);
  };
  const linesOf = (text: string) =>
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('writes lines together rather than one write each, and within a fraction of a second when idle', async () => {
    const file = tempPath('server.log');
    const destination = new BufferedLogDestination({ fd: fs.openSync(file, 'a') });
    cleanup.push(() => destination.stop());
    const log = openLogger({ logLevel: 'info' }, destination);
    for (let i = 0; i < 10; i++) log.info({ i }, 'request completed');
    expect(fs.readFileSync(file, 'utf8')).toBe('');
    await expect
      .poll(() => linesOf(fs.readFileSync(file, 'utf8')).map((l) => l.i), { timeout: 2000, interval: 50 })
      .toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('drops and counts lines while stdout does not drain, never blocks the caller, and writes again once it does', async () => {
    // A pipe nobody reads yet, opened as a server's stdout would be when its reader stalls.
    const fifo = tempPath('stdout');
    execFileSync('mkfifo', [fifo]);
    const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    let dropped = 0;
    const destination = new BufferedLogDestination({
      fd,
      maxBufferedBytes: 64 * KiB,
      onDrop: (lines) => (dropped += lines),
    });
    cleanup.push(() => destination.stop());
    const log = openLogger({ logLevel: 'info' }, destination);

    // Far more than the pipe (64 KiB on Linux) and the buffer hold.
    const filler = 'x'.repeat(900);
    const started = performance.now();
    for (let i = 0; i < 1000; i++) {
      log.info({ i, filler }, 'while stuck');
      if (i % 100 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    expect(performance.now() - started).toBeLessThan(5000);
    expect(dropped).toBeGreaterThan(700);

    // The reader comes back: what was buffered arrives, then new lines.
    const reader = fs.createReadStream(fifo);
    let received = '';
    reader.on('data', (chunk) => (received += chunk.toString()));
    cleanup.push(() => reader.destroy());
    log.info('stdout drains again');
    await expect.poll(() => received.includes('stdout drains again'), { timeout: 5000, interval: 50 }).toBe(true);
    const arrived = linesOf(received.slice(0, received.lastIndexOf('\n') + 1));
    expect(arrived.filter((l) => l.msg === 'while stuck').length).toBe(1000 - dropped);
  });

  it('writes what is left when the process exits, every line once and in order', async () => {
    // Several writes' worth, then lines logged when nothing else is left to run: they leave at exit.
    const script = `
      import { BufferedLogDestination, openLogger } from './src/log.ts';
      const log = openLogger({ logLevel: 'info' }, new BufferedLogDestination());
      for (let i = 0; i < 2990; i++) log.info({ i }, 'line');
      process.once('beforeExit', () => {
        for (let i = 2990; i < 3000; i++) log.info({ i }, 'last line');
      });
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { maxBuffer: 64 * 1024 * KiB },
    );
    expect(linesOf(stdout).map((l) => l.i)).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  });

  it('counts the lines it cannot write as dropped, and goes on', async () => {
    const fd = fs.openSync(tempPath('closed.log'), 'a');
    fs.closeSync(fd);
    let dropped = 0;
    const destination = new BufferedLogDestination({ fd, onDrop: (lines) => (dropped += lines) });
    cleanup.push(() => destination.stop());
    const log = openLogger({ logLevel: 'info' }, destination);
    for (let i = 0; i < 300; i++) log.info({ i }, 'into a closed file');
    await expect.poll(() => dropped, { timeout: 2000, interval: 50 }).toBe(300);
    log.info('and one more');
    await expect.poll(() => dropped, { timeout: 2000, interval: 50 }).toBe(301);
  });
});
