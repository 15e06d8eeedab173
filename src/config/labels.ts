export type Labels = Record<string, string>;

export const LABEL_KEY_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const LABEL_VALUE_MAX = 256;

/** Parses `k=v,k2=v2` (API.md §1 label rules); returns the first problem found. */
export function parseLabels(raw: string): { labels: Labels } | { problem: string } {
  const labels: Labels = {};
  for (const part of raw.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) return { problem: `"${item}" is not of the form key=value` };
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (!LABEL_KEY_PATTERN.test(key)) return { problem: `label key "${key}" is invalid` };
    if (value.length > LABEL_VALUE_MAX) return { problem: `label "${key}" has a value longer than ${LABEL_VALUE_MAX} characters` };
    if (Object.hasOwn(labels, key)) return { problem: `label "${key}" is given twice` };
    labels[key] = value;
  }
  return { labels };
}
