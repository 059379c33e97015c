#!/usr/bin/env node
import { compose, fileService, openCatalog, openStore, withPorts } from './compose.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { reindex } from './files/reindex.js';
import { openLogger } from './log.js';
import { VERSION } from './version.js';

async function runReindex(config: Config, prune: boolean): Promise<number> {
  return withPorts(config, async ({ store, catalog }) => {
    if (prune) {
      const before = new Date(Date.now() - config.leftoverGraceMs);
      process.stdout.write(
        `reindex: removing leftovers of crashed writes older than ${before.toISOString()} from the ${store.kind} store\n`,
      );
      process.stdout.write(`reindex: ${await store.pruneLeftovers(before)} leftovers removed\n`);
    }
    process.stdout.write(
      `reindex: reading ${store.kind} store at ${store.location} into ${catalog.kind} catalog at ${catalog.location}\n`,
    );
    const restored = await reindex(store, catalog, (n) => process.stdout.write(`reindex: ${n} files restored\n`));
    process.stdout.write(`reindex: done, ${restored} files in the catalog from the store\n`);
    return 0;
  });
}

async function serve(config: Config): Promise<void> {
  const gateway = await compose(config);
  const { app, files, store, catalog, log } = gateway;
  const address = await app.listen({ host: config.host, port: config.port });
  log.info(
    {
      store: store.kind,
      storeLocation: store.location,
      catalog: catalog.kind,
      catalogLocation: catalog.location,
      address,
      glibcTunables: config.glibcTunables,
      nodeFlags: process.execArgv,
    },
    `files-gateway ${VERSION} listening on ${address} (store ${store.kind} at ${store.location}, catalog ${catalog.kind} at ${catalog.location})`,
  );
  files.startSweeper(config.sweepIntervalMs);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: no new connections, waiting for requests in flight');
    await gateway.close();
    log.info('stopped');
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

async function runSweep(config: Config): Promise<number> {
  const log = openLogger(config);
  return withPorts(config, async (ports) => {
    const removed = await fileService(config, ports, { log }).sweep();
    process.stdout.write(
      `sweep: removed ${removed.files} expired files and released ${removed.uploads} finished uploads from the ${ports.store.kind} store at ${ports.store.location}\n`,
    );
    return 0;
  });
}

/**
 * What to run when a deployment does not come up: configuration, then the store and the catalog,
 * each on its own line, without changing anything. Exits 1 on any problem.
 */
async function runCheck(ctx: Context): Promise<number> {
  const line = (ok: boolean, what: string, detail: string) =>
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'}  ${what}: ${detail}\n`);
  let config: Config;
  try {
    config = ctx.config();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    line(false, 'configuration', err.message);
    return 1;
  }
  line(
    true,
    'configuration',
    `listen ${config.host}:${config.port}, files up to ${config.maxFileBytes} bytes, data folder ${config.dataDir}`,
  );
  let healthy = true;
  const store = await openStore(config);
  try {
    await store.ping();
    line(true, `${store.kind} store`, `${store.location} answers`);
  } catch (err) {
    healthy = false;
    line(false, `${store.kind} store`, `${store.location}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await store.close();
  }
  const catalog = await openCatalog(config);
  try {
    await catalog.init();
    const { files, bytes } = await catalog.stats();
    line(true, `${catalog.kind} catalog`, `${catalog.location} holds ${files} files, ${bytes} bytes`);
  } catch (err) {
    healthy = false;
    line(false, `${catalog.kind} catalog`, `${catalog.location}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await catalog.close();
  }
  return healthy ? 0 : 1;
}

/** A command reads the configuration when (and if) it needs it; an invalid one throws ConfigError. */
interface Context {
  /** The command's own arguments. */
  args: string[];
  config(): Config;
}

interface Command {
  summary: string;
  /** Its flags, for its --help. */
  options?: string;
  /** Resolves to the exit code, or to -1 for serve, which runs until a signal. */
  run(ctx: Context): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run the HTTP server (the default command)',
    run: async (ctx) => {
      await serve(ctx.config());
      return -1;
    },
  },
  reindex: {
    summary:
      'rebuild the catalog from the metadata stored with every blob (bucket or folder); safe to run again, prints progress',
    options:
      '  --prune  first remove what crashed writes left behind (temp files, blobs without metadata, S3 multipart\n' +
      '           uploads) when older than FILES_LEFTOVER_GRACE_SECONDS\n',
    run: (ctx) => runReindex(ctx.config(), ctx.args.includes('--prune')),
  },
  sweep: {
    summary: 'delete expired files now and report how many were removed',
    run: (ctx) => runSweep(ctx.config()),
  },
  check: {
    summary: 'validate the configuration and reach the store and the catalog, changing nothing; exits 1 on a problem',
    run: (ctx) => runCheck(ctx),
  },
};

const usage = (command?: string) =>
  command
    ? `Usage: files-gateway ${command}${COMMANDS[command]!.options ? ' [options]' : ''}\n\n${COMMANDS[command]!.summary}.\n${COMMANDS[command]!.options ?? ''}Configuration comes from the environment (see README).\n`
    : `Usage: files-gateway [command]\n\nOpenAI-compatible Files API gateway. Configuration comes from the environment (see README).\n\nCommands:\n${Object.entries(
        COMMANDS,
      )
        .map(([name, c]) => `  ${name.padEnd(9)}${c.summary}`)
        .join('\n')}\n\nfiles-gateway <command> --help describes one command.\n`;

async function main(argv: string[]): Promise<number> {
  const [first = 'serve', ...rest] = argv;
  if (['--help', '-h', 'help'].includes(first)) {
    process.stdout.write(usage(rest[0] && COMMANDS[rest[0]] ? rest[0] : undefined));
    return 0;
  }
  const command = COMMANDS[first];
  if (!command) {
    process.stderr.write(`files-gateway: unknown command '${first}'\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(usage(first));
    return 0;
  }
  try {
    return await command.run({
      args: rest,
      config: () => loadConfig(),
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`files-gateway: invalid configuration: ${err.message}\n`);
    return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`files-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
