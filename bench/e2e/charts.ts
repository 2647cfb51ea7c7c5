/**
 * Hand-written SVG charts for the e2e report (no chart library): latency CDFs with a log x-axis, and per-endpoint
 * share of requests over time. Plain SVG 1.1 with inline styles, so any browser or `rsvg-convert` renders it.
 *
 * @module
 */
import type { CdfPoint } from './histogram.js';

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(n: number): string {
  return Number(n.toFixed(2)).toString();
}

function fmtMs(ms: number): string {
  if (ms >= 1000) return `${fmt(ms / 1000)} s`;
  if (ms >= 1) return `${fmt(ms)} ms`;
  return `${fmt(ms * 1000)} µs`;
}

export interface CdfSeries {
  readonly name: string;
  /** Points with `value` in µs. */
  readonly points: readonly CdfPoint[];
  readonly color?: string;
  readonly dashed?: boolean;
}

interface Box {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

/**
 * Two panels over the same log latency axis (ms): the CDF (linear y), and the tail as 1 − CDF on a log y axis
 * down to 10^-4, where p99 and p99.9 can be read off.
 */
export function cdfChart(title: string, series: readonly CdfSeries[]): string {
  const W = 1000;
  const H = 480;
  const left: Box = { x: 70, y: 50, w: 390, h: 330 };
  const right: Box = { x: 570, y: 50, w: 390, h: 330 };
  const all = series.flatMap((s) => s.points.map((p) => p.value / 1000)).filter((v) => v > 0);
  let lo = all.length === 0 ? 0.1 : Math.min(...all);
  let hi = all.length === 0 ? 100 : Math.max(...all);
  lo = 10 ** Math.floor(Math.log10(lo));
  hi = 10 ** Math.ceil(Math.log10(hi));
  if (hi <= lo) hi = lo * 10;
  const xOf = (b: Box, ms: number) =>
    b.x + ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / Math.log10(hi / lo)) * b.w;
  const TAIL_MIN = 1e-4;
  const yLin = (b: Box, f: number) => b.y + (1 - f) * b.h;
  const yTail = (b: Box, f: number) => {
    const t = Math.max(1 - f, TAIL_MIN);
    return b.y + (-Math.log10(t) / -Math.log10(TAIL_MIN)) * b.h;
  };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  );
  const xTicks = logTicks(lo, hi);
  const frame = (b: Box, yTicks: Array<[number, string]>, yLabel: string, panelTitle: string) => {
    out.push(`<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="#444"/>`);
    out.push(
      `<text x="${b.x + b.w / 2}" y="${b.y - 8}" text-anchor="middle" font-weight="bold">${esc(panelTitle)}</text>`,
    );
    for (const v of xTicks) {
      const x = fmt(xOf(b, v));
      const major = Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;
      out.push(
        `<line x1="${x}" y1="${b.y}" x2="${x}" y2="${b.y + b.h}" stroke="${major ? '#ccc' : '#eee'}"/>`,
        `<text x="${x}" y="${b.y + b.h + 16}" text-anchor="middle" fill="#333">${esc(fmtMs(v))}</text>`,
      );
    }
    for (const [y, label] of yTicks) {
      out.push(
        `<line x1="${b.x}" y1="${fmt(y)}" x2="${b.x + b.w}" y2="${fmt(y)}" stroke="#eee"/>`,
        `<text x="${b.x - 6}" y="${fmt(y + 4)}" text-anchor="end" fill="#333">${esc(label)}</text>`,
      );
    }
    out.push(
      `<text x="${b.x + b.w / 2}" y="${b.y + b.h + 36}" text-anchor="middle">latency (log scale)</text>`,
      `<text transform="translate(${b.x - 50},${b.y + b.h / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    );
  };
  frame(
    left,
    [0, 0.25, 0.5, 0.75, 0.9, 1].map((f) => [yLin(left, f), f.toString()] as [number, string]),
    'fraction of requests ≤ latency',
    'CDF',
  );
  frame(
    right,
    [
      [1, 'p0'],
      [0.1, 'p90'],
      [0.01, 'p99'],
      [0.001, 'p99.9'],
      [0.0001, 'p99.99'],
    ].map(([t, l]) => [yTail(right, 1 - (t as number)), l as string] as [number, string]),
    'percentile (1 − CDF, log scale)',
    'Tail',
  );
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length] ?? '#000';
    const dash = s.dashed === true ? ' stroke-dasharray="6 4"' : '';
    for (const [b, yOf] of [
      [left, yLin],
      [right, yTail],
    ] as const) {
      // Step function: each point is the top of its bucket.
      let d = '';
      let prevF = 0;
      for (const p of s.points) {
        const x = fmt(xOf(b, p.value / 1000));
        d += `${d === '' ? 'M' : 'L'}${x},${fmt(yOf(b, prevF))}L${x},${fmt(yOf(b, p.fraction))}`;
        prevF = p.fraction;
      }
      if (d !== '') out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"${dash}/>`);
    }
  });
  // Legend under the panels.
  let legendY = H - 40;
  let lx = 70;
  series.forEach((s, i) => {
    const width = 40 + s.name.length * 6.6;
    if (lx + width > W - 10) {
      lx = 70;
      legendY += 20;
    }
    const color = s.color ?? PALETTE[i % PALETTE.length] ?? '#000';
    const dash = s.dashed === true ? ' stroke-dasharray="6 4"' : '';
    out.push(
      `<line x1="${lx}" y1="${legendY}" x2="${lx + 24}" y2="${legendY}" stroke="${color}" stroke-width="2.5"${dash}/>`,
      `<text x="${lx + 30}" y="${legendY + 4}">${esc(s.name)}</text>`,
    );
    lx += width;
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface SharePanel {
  readonly title: string;
  readonly bucketMs: number;
  /** Completed requests per backend id, per time bucket. */
  readonly byBackend: Readonly<Record<string, readonly number[]>>;
  /** The backend drawn in red (the slow one). */
  readonly highlight: string;
  /** Shaded interval (the slow window), ms from the start. */
  readonly window: readonly [number, number] | undefined;
}

/** Small multiples, one per policy: each endpoint's share of the requests completed in each time bucket. */
export function shareChart(title: string, panels: readonly SharePanel[]): string {
  const W = 1000;
  const PH = 170;
  const GAP = 50;
  const H = 60 + panels.length * (PH + GAP) + 20;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`,
  );
  // Per panel: totals per bucket; a bucket with under half the median total (the stragglers after the end of the
  // phase) has no meaningful share and is left out.
  const prepared = panels.map((p) => {
    const ids = Object.keys(p.byBackend).sort();
    const n = Math.max(0, ...ids.map((id) => p.byBackend[id]?.length ?? 0));
    const totals = Array.from({ length: n }, (_, i) => ids.reduce((s, id) => s + (p.byBackend[id]?.[i] ?? 0), 0));
    const sorted = [...totals].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const shares = new Map<string, Array<number | undefined>>();
    for (const id of ids) {
      shares.set(
        id,
        totals.map((t, i) => (t > 0 && t >= median / 2 ? (p.byBackend[id]?.[i] ?? 0) / t : undefined)),
      );
    }
    return { ids, n, shares };
  });
  // One y scale for every panel, so policies compare at a glance.
  let yMax = 0.3;
  for (const q of prepared) for (const row of q.shares.values()) for (const v of row) yMax = Math.max(yMax, v ?? 0);
  yMax = Math.min(1, Math.ceil(yMax * 10) / 10);
  panels.forEach((p, k) => {
    const b: Box = { x: 70, y: 60 + k * (PH + GAP), w: 760, h: PH };
    const {
      ids,
      n,
      shares: shareRows,
    } = prepared[k] ?? { ids: [] as string[], n: 0, shares: new Map<string, Array<number | undefined>>() };
    const spanMs = n * p.bucketMs;
    const xOf = (ms: number) => b.x + (spanMs === 0 ? 0 : (ms / spanMs) * b.w);
    const yOf = (s: number) => b.y + (1 - s / yMax) * b.h;
    out.push(`<text x="${b.x}" y="${b.y - 10}" font-weight="bold">${esc(p.title)}</text>`);
    if (p.window !== undefined) {
      const [a, z] = p.window;
      out.push(
        `<rect x="${fmt(xOf(a))}" y="${b.y}" width="${fmt(Math.max(0, xOf(z) - xOf(a)))}" height="${b.h}" fill="#fde0dc"/>`,
        `<text x="${fmt(xOf((a + z) / 2))}" y="${b.y + 14}" text-anchor="middle" fill="#b33">${esc(p.highlight)} slow</text>`,
      );
    }
    for (let s = 0; s <= yMax + 1e-9; s += 0.1) {
      out.push(
        `<line x1="${b.x}" y1="${fmt(yOf(s))}" x2="${b.x + b.w}" y2="${fmt(yOf(s))}" stroke="#eee"/>`,
        `<text x="${b.x - 6}" y="${fmt(yOf(s) + 4)}" text-anchor="end" fill="#333">${Math.round(s * 100)}%</text>`,
      );
    }
    const secondStep = spanMs > 20_000 ? 5000 : spanMs > 8000 ? 2000 : spanMs > 3000 ? 1000 : 500;
    for (let t = 0; t <= spanMs; t += secondStep) {
      out.push(
        `<line x1="${fmt(xOf(t))}" y1="${b.y + b.h}" x2="${fmt(xOf(t))}" y2="${b.y + b.h + 4}" stroke="#444"/>`,
        `<text x="${fmt(xOf(t))}" y="${b.y + b.h + 16}" text-anchor="middle" fill="#333">${fmt(t / 1000)} s</text>`,
      );
    }
    if (ids.length > 0) {
      const fair = 1 / ids.length;
      out.push(
        `<line x1="${b.x}" y1="${fmt(yOf(fair))}" x2="${b.x + b.w}" y2="${fmt(yOf(fair))}" stroke="#555" stroke-dasharray="4 4"/>`,
      );
    }
    const line = (id: string, color: string, width: number) => {
      let d = '';
      let pen = false;
      (shareRows.get(id) ?? []).forEach((v, i) => {
        if (v === undefined) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${fmt(xOf((i + 0.5) * p.bucketMs))},${fmt(yOf(v))}`;
        pen = true;
      });
      if (d !== '') out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="${width}"/>`);
    };
    for (const id of ids) if (id !== p.highlight) line(id, '#9aa', 1);
    if (ids.includes(p.highlight)) line(p.highlight, '#d62728', 2.5);
    out.push(`<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="#444"/>`);
    const lx = b.x + b.w + 15;
    out.push(
      `<line x1="${lx}" y1="${b.y + 20}" x2="${lx + 20}" y2="${b.y + 20}" stroke="#d62728" stroke-width="2.5"/>`,
      `<text x="${lx + 26}" y="${b.y + 24}">${esc(p.highlight)} (slow)</text>`,
      `<line x1="${lx}" y1="${b.y + 40}" x2="${lx + 20}" y2="${b.y + 40}" stroke="#9aa"/>`,
      `<text x="${lx + 26}" y="${b.y + 44}">other backends</text>`,
      `<line x1="${lx}" y1="${b.y + 60}" x2="${lx + 20}" y2="${b.y + 60}" stroke="#555" stroke-dasharray="4 4"/>`,
      `<text x="${lx + 26}" y="${b.y + 64}">fair share 1/${ids.length}</text>`,
    );
  });
  out.push(
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">time since the start of the phase; share of the requests completed in each bucket</text>`,
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
