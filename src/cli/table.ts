// Text for people: the one aligned-table formatter every CLI table uses, and short human forms
// of durations, counts and rates. Never on the packet path.

export type Align = 'left' | 'right';

export interface TableOptions {
  /** Per column; default left. Numbers read best right-aligned. */
  align?: readonly Align[];
  /** Between columns; default two spaces. */
  gap?: string;
}

export type Cell = string | number | null | undefined;

/** Cell text: null and undefined (and the empty string) print as "-" so columns never collapse. */
export function cellText(c: Cell): string {
  if (c === null || c === undefined || c === '') return '-';
  return String(c);
}

/**
 * A header row and the rows under it, each column as wide as its widest cell, separated by `gap`.
 * Lines carry no trailing spaces (the last column is never padded on the right).
 */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>, opts: TableOptions = {}): string {
  const gap = opts.gap ?? '  ';
  const cols = header.length;
  const text = [header.map((h) => h), ...rows.map((r) => Array.from({ length: cols }, (_, i) => cellText(r[i])))];
  const width = Array.from({ length: cols }, (_, i) => Math.max(...text.map((r) => r[i]!.length)));
  return text.map((r) => {
    const cells = r.map((c, i) => {
      const right = opts.align?.[i] === 'right';
      if (right) return c.padStart(width[i]!);
      return i === cols - 1 ? c : c.padEnd(width[i]!);
    });
    return cells.join(gap).replace(/\s+$/, '');
  }).join('\n');
}

/** "key  value" lines with the keys padded to one width. */
export function formatPairs(pairs: ReadonlyArray<readonly [string, Cell]>): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(w)}  ${cellText(v)}`.replace(/\s+$/, '')).join('\n');
}

const UNITS: ReadonlyArray<readonly [string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];

/**
 * A duration in milliseconds as its two largest units: 3d4h, 2h5m, 5m12s, 42s, 800ms.
 * Under a minute with a fraction it keeps one decimal (1.5s); whole units drop a zero tail (3d, 5m).
 */
export function humanDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 0) return '-' + humanDuration(-ms);
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) {
    const s = Math.round(ms / 100) / 10;
    return s >= 60 ? '1m' : `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  }
  // Whole seconds from here on: two units, the second rounded down.
  let rest = Math.round(ms / 1000) * 1000;
  let out = '';
  let used = 0;
  for (const [u, n] of UNITS) {
    if (used === 2) break;
    const q = Math.floor(rest / n);
    if (q === 0 && used === 0) continue;
    rest -= q * n;
    used++;
    if (q > 0) out += `${q}${u}`;
  }
  return out;
}

/** A duration given in seconds (the API's unit). */
export function humanSeconds(s: number): string {
  return humanDuration(s * 1000);
}

/** A count with a k/M/G suffix past 9999: 812, 9999, 12.3k, 4.5M, 1.2G. */
export function humanCount(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n < 0) return '-' + humanCount(-n);
  if (n < 10_000) return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 1 : 0);
  for (const [u, d] of [['G', 1e9], ['M', 1e6], ['k', 1e3]] as const) {
    if (n >= d) {
      const v = n / d;
      return `${v >= 100 ? Math.round(v) : v.toFixed(1).replace(/\.0$/, '')}${u}`;
    }
  }
  return String(n);
}

/** A per-second rate: whole numbers from 10 up, one decimal below ("0.5"), "0" for nothing. */
export function humanRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  if (perSecond === 0) return '0';
  if (Math.abs(perSecond) < 10) return perSecond.toFixed(1).replace(/\.0$/, '');
  return humanCount(Math.round(perSecond));
}

/**
 * `head` then the items joined by ", ", wrapped to `width` columns; continuation lines are
 * indented by two spaces. For lists in the fixed-width live views (drops by reason).
 */
export function wrapList(head: string, items: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let cur = head;
  items.forEach((item, i) => {
    const piece = item + (i < items.length - 1 ? ',' : '');
    if (cur.length + 1 + piece.length > width && cur.trim() !== '' && cur !== head) {
      lines.push(cur);
      cur = '  ' + piece;
    } else {
      cur += (cur === '' ? '' : ' ') + piece;
    }
  });
  lines.push(cur);
  return lines;
}
