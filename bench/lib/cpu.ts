import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** Fields of /proc/<pid>/stat after the command name, which may itself hold spaces. */
const statFields = (pid: number): string[] => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');

/** User plus system CPU seconds of a process so far, all its threads; and its minor page faults. */
export function processUsage(pid: number): { cpuSeconds: number; faults: number } {
  const fields = statFields(pid);
  return { cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS, faults: Number(fields[7]) };
}

/** User plus system CPU seconds of `pid` so far; 0 without one (a side with no server process of its own). */
export const cpuSeconds = (pid: number | undefined): number => (pid === undefined ? 0 : processUsage(pid).cpuSeconds);

/**
 * CPU seconds the whole machine has been busy, summed over its cores: every process, kernel and
 * interrupt time; not idle, I/O wait or time the hypervisor stole.
 */
export function machineBusySeconds(): number {
  const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user! + nice! + system! + irq! + softirq!) / CLOCK_TICKS;
}
