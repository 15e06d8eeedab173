/**
 * `npm run bench`: runs every benchmark in scripts/bench/ (each *.ts but this one), one after
 * another so they do not disturb each other, and prints one table.
 *
 *   npm run bench                 all of them (builds dist/ first)
 *   npm run bench -- fleet        only those whose file name contains "fleet"
 *
 * The contract with a benchmark: its progress goes to stderr, and its LAST stdout line is one
 * JSON object: {"name", "agent_<unit>", "baseline_<unit>", "ratio", "target", "pass", …}, where
 * <unit> is s, ms, mb, rps, … (shown in the table), and an optional "rows" array of objects of
 * the same shape when one run measures several things (each becomes a table row).
 * Exit code: 0 when every benchmark ran and passed, 1 otherwise.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMain } from '../lib/is-main.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

type Json = Record<string, unknown>;

export interface Row {
  name: string;
  agent: string;
  baseline: string;
  ratio: string;
  target: string;
  pass: boolean | undefined;
}

const UNITS: Record<string, string> = { s: 's', ms: 'ms', mb: 'MB', mib: 'MiB', rps: 'req/s', mbps: 'MB/s', mib_s: 'MiB/s', percent: '%' };

/** "agent_s": 1.5 → "1.5 s"; the first key starting with the prefix wins. */
export function measured(result: Json, prefix: 'agent' | 'baseline'): string {
  for (const [key, value] of Object.entries(result)) {
    if (key !== prefix && !key.startsWith(`${prefix}_`)) continue;
    if (value === null || value === undefined) return '–';
    const unit = key === prefix ? '' : key.slice(prefix.length + 1);
    const shown = typeof value === 'number' ? String(value) : JSON.stringify(value);
    return unit === '' ? shown : `${shown} ${UNITS[unit] ?? unit}`;
  }
  return '–';
}

/** The table rows one benchmark's JSON line stands for. */
export function rowsOf(result: Json, fallbackName: string): Row[] {
  const items = Array.isArray(result.rows) && result.rows.length > 0 ? (result.rows as Json[]) : [result];
  return items.map((item) => ({
    name: typeof item.name === 'string' ? item.name : fallbackName,
    agent: measured(item, 'agent'),
    baseline: measured(item, 'baseline'),
    ratio: typeof item.ratio === 'number' ? String(item.ratio) : '–',
    target: typeof item.target === 'string' ? item.target : '–',
    pass: typeof item.pass === 'boolean' ? item.pass : undefined,
  }));
}

export function table(rows: readonly Row[]): string {
  const header = ['benchmark', 'agent', 'baseline', 'ratio', 'target', 'result'];
  const cells = rows.map((r) => [r.name, r.agent, r.baseline, r.ratio, r.target, r.pass === undefined ? '–' : r.pass ? 'pass' : 'FAIL']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]): string => `| ${c.map((v, i) => v.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

/** The last non-empty line of `stdout`, when it is a JSON object (the contract above). */
export function lastJsonLine(stdout: string): Json | undefined {
  const last = stdout.split('\n').filter((l) => l.trim() !== '').at(-1);
  if (last === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(last);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Json) : undefined;
  } catch {
    return undefined;
  }
}

/** A benchmark that hangs must not hang the table: each gets this long. */
const BENCH_TIMEOUT_MS = 20 * 60_000;

function runBench(file: string): Promise<{ code: number | null; stdout: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [TSX, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => {
      process.stderr.write(`${basename(file)}: no result after ${BENCH_TIMEOUT_MS / 60_000} min; stopping it\n`);
      child.kill('SIGKILL');
    }, BENCH_TIMEOUT_MS);
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, seconds: Math.round((Date.now() - started) / 1000) });
    });
  });
}

async function main(): Promise<void> {
  const filters = process.argv.slice(2);
  const files = (await readdir(HERE))
    .filter((name) => name.endsWith('.ts') && name !== 'run.ts' && !name.endsWith('.test.ts'))
    .filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)))
    .sort();
  const rows: Row[] = [];
  let ok = true;
  for (const name of files) {
    process.stderr.write(`\n=== ${name} ===\n`);
    const { code, stdout, seconds } = await runBench(join(HERE, name));
    const result = lastJsonLine(stdout);
    if (code !== 0 || result === undefined) {
      ok = false;
      rows.push({ name: basename(name, '.ts'), agent: '–', baseline: '–', ratio: '–', target: '–', pass: false });
      process.stderr.write(`${name}: exit ${code}${result === undefined ? ', no JSON result line' : ''}\n`);
      continue;
    }
    process.stderr.write(`${name}: done in ${seconds} s\n`);
    const benchRows = rowsOf(result, basename(name, '.ts'));
    if (benchRows.some((r) => r.pass === false)) ok = false;
    rows.push(...benchRows);
  }
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  process.stdout.write(`\nbyteor-agent benchmarks, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpu}, Node ${process.versions.node}\n\n${table(rows)}\n`);
  process.exitCode = ok ? 0 : 1;
}

if (isMain(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
