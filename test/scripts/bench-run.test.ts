import { describe, expect, it } from 'vitest';
import { lastJsonLine, rowsOf, table } from '../../scripts/bench/run.js';

describe('npm run bench: reading results and printing the table', () => {
  it('takes the last stdout line as the result, and nothing when it is not JSON', () => {
    expect(lastJsonLine('progress\n{"name":"x","pass":true}\n\n')).toEqual({ name: 'x', pass: true });
    expect(lastJsonLine('{"name":"x"}\nTraceback: crashed\n')).toBeUndefined();
    expect(lastJsonLine('')).toBeUndefined();
  });

  it('shows each measurement with the unit from its key, and expands rows', () => {
    expect(rowsOf({ name: 'bundle', agent_s: 1.25, baseline_s: 1, ratio: 1.25, target: '≤ 1.5', pass: true }, 'bundle')).toEqual([
      { name: 'bundle', agent: '1.25 s', baseline: '1 s', ratio: '1.25', target: '≤ 1.5', pass: true },
    ]);
    const rows = rowsOf({ name: 'fleet', rows: [{ name: 'fleet (b)', agent_rps: 30, baseline_rps: 25, ratio: 1.2, target: '≤ 2.0', pass: false }, { name: 'rss', agent_mb: 60.5, baseline_mb: 40 }] }, 'fleet');
    expect(rows.map((r) => [r.name, r.agent, r.baseline, r.pass])).toEqual([
      ['fleet (b)', '30 req/s', '25 req/s', false],
      ['rss', '60.5 MB', '40 MB', undefined],
    ]);
  });

  it('prints a markdown table with pass and FAIL', () => {
    const text = table([
      { name: 'a', agent: '1 s', baseline: '1 s', ratio: '1', target: '≤ 2', pass: true },
      { name: 'bb', agent: '3 s', baseline: '1 s', ratio: '3', target: '≤ 2', pass: false },
    ]);
    expect(text.split('\n')).toEqual([
      '| benchmark | agent | baseline | ratio | target | result |',
      '|-----------|-------|----------|-------|--------|--------|',
      '| a         | 1 s   | 1 s      | 1     | ≤ 2    | pass   |',
      '| bb        | 3 s   | 1 s      | 3     | ≤ 2    | FAIL   |',
    ]);
  });
});
