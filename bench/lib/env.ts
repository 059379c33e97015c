/**
 * The one reader of the benchmarks' environment variables. Every bench script takes its settings
 * through it, so that a bad value (a typo, a negative, an unknown name in a list) stops the run
 * before it starts, with an EnvError naming the variable, instead of becoming NaN or a silent
 * default halfway through an hour of measuring.
 *
 * As in the gateway's own config (src/config.ts), a value is trimmed and an empty one counts as
 * unset: the default applies.
 */
import { MiB } from './stats.js';

export class EnvError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'EnvError';
  }
}

export interface IntLimits {
  /** The smallest value allowed; 1 unless given (counts, durations and sizes of zero mean nothing in most places). */
  min?: number;
  /** The value must be a multiple of this. */
  multipleOf?: number;
}

type Source = Record<string, string | undefined>;

/** Readers over `source` (process.env by default); each throws an EnvError naming the variable. */
export function envReader(source: Source = process.env) {
  const raw = (name: string): string | undefined => {
    const v = source[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };

  function int(name: string, fallback: number, { min = 1, multipleOf }: IntLimits = {}): number {
    const v = raw(name);
    if (v === undefined) return fallback;
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    const wanted =
      min === 0 ? 'a whole number >= 0' : min === 1 ? 'a positive whole number' : `a whole number >= ${min}`;
    if (!Number.isSafeInteger(n) || n < min) throw new EnvError(name, `"${v}" is not ${wanted}`);
    if (multipleOf !== undefined && n % multipleOf !== 0)
      throw new EnvError(name, `"${v}" is not a multiple of ${multipleOf}`);
    return n;
  }

  return {
    /** A whole number (digits only), at least `min` (default 1). */
    int,

    /** A size given in MiB as a whole number (BENCH_SIZE_MIB=1024), returned in bytes; the limits apply to the MiB. */
    mib(name: string, fallbackMiB: number, limits?: IntLimits): number {
      const bytes = int(name, fallbackMiB, limits) * MiB;
      if (!Number.isSafeInteger(bytes)) throw new EnvError(name, `"${raw(name)}" MiB is too large`);
      return bytes;
    },

    /** 1 or true, 0 or false; unset is false. */
    flag(name: string): boolean {
      const v = raw(name);
      if (v === undefined || v === '0' || v.toLowerCase() === 'false') return false;
      if (v === '1' || v.toLowerCase() === 'true') return true;
      throw new EnvError(name, `"${v}" is not 1 or 0`);
    },

    /** One of `choices`. */
    oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
      const v = raw(name);
      if (v === undefined) return fallback;
      if (!(choices as readonly string[]).includes(v))
        throw new EnvError(name, `"${v}" is not one of ${choices.join(', ')}`);
      return v as T;
    },

    /** A comma-separated list of names from `choices`, each once, in the order given. */
    listOf<T extends string>(name: string, choices: readonly T[], fallback: readonly T[]): T[] {
      const v = raw(name);
      if (v === undefined) return [...fallback];
      const names = v.split(',').map((s) => s.trim());
      for (const n of names) {
        if (!(choices as readonly string[]).includes(n))
          throw new EnvError(name, `unknown name '${n}' (one of ${choices.join(', ')})`);
      }
      return [...new Set(names as T[])];
    },

    /** Space-separated words (command-line flags); unset is none. */
    words: (name: string): string[] => raw(name)?.split(/\s+/) ?? [],

    /** A JSON object of string values (environment variables for a child process); unset is {}. */
    stringRecord(name: string): Record<string, string> {
      const v = raw(name);
      if (v === undefined) return {};
      let parsed: unknown;
      try {
        parsed = JSON.parse(v);
      } catch {
        throw new EnvError(name, `"${v}" is not JSON`);
      }
      if (
        typeof parsed !== 'object' ||
        parsed === null ||
        Array.isArray(parsed) ||
        !Object.values(parsed).every((x) => typeof x === 'string')
      ) {
        throw new EnvError(name, `"${v}" is not a JSON object of strings`);
      }
      return parsed as Record<string, string>;
    },

    /** Any text (a path, an endpoint, a value the gateway's own config checks); undefined when unset. */
    text: raw,
  };
}

export type EnvReader = ReturnType<typeof envReader>;

/** The readers over this process's environment. */
export const env: EnvReader = envReader();
