/**
 * Turns the agent's JSON log lines into short human lines for the demo (what `| pino-pretty`
 * would do, without another dependency). Non-JSON lines pass through unchanged.
 */
const LEVEL_COLOURS: Record<string, string> = { trace: '90', debug: '90', info: '32', warn: '33', error: '31', fatal: '35' };
const SKIP = new Set(['level', 'time', 'pid', 'msg', 'agent', 'hostname']);

export function prettyLine(line: string, colour: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = String(record.level ?? 'info');
  const time = typeof record.time === 'string' ? record.time.slice(11, 19) : '';
  const fields = Object.entries(record)
    .filter(([key]) => !SKIP.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  const tag = level.toUpperCase().padEnd(5);
  const painted = colour ? `\u001b[${LEVEL_COLOURS[level] ?? '0'}m${tag}\u001b[0m` : tag;
  return `${time} ${painted} ${String(record.msg ?? '')}${fields === '' ? '' : `  ${colour ? '\u001b[90m' : ''}${fields}${colour ? '\u001b[0m' : ''}`}`;
}
