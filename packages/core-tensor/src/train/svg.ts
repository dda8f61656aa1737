/**
 * outDir/loss.svg: a small self-contained SVG of the loss curve (train loss per step as a line, eval loss
 * as dots), readable in any browser, no scripts or external styles. Written to a temp file and renamed,
 * at each checkpoint and at the end. Long runs are thinned to at most 1000 points of the line.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Point } from './metrics.js';

export const LOSS_SVG = 'loss.svg';
const W = 640;
const H = 360;
const M = { left: 56, right: 16, top: 28, bottom: 36 };
const MAX_POINTS = 1000;

const fmt = (v: number) => (Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3));

function thin(points: readonly Point[]): readonly Point[] {
  if (points.length <= MAX_POINTS) return points;
  const every = Math.ceil(points.length / MAX_POINTS);
  return points.filter((_, i) => i % every === 0 || i === points.length - 1);
}

/** The SVG text of a loss curve (non-finite losses are left out). */
export function lossCurveSvg(train: readonly Point[], evals: readonly Point[]): string {
  const tr = thin(train.filter(([, l]) => Number.isFinite(l)));
  const ev = evals.filter(([, l]) => Number.isFinite(l));
  const all = [...tr, ...ev];
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">\n` +
    `<rect width="${W}" height="${H}" fill="white"/>\n`;
  if (all.length === 0) return `${head}<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no steps yet</text>\n</svg>\n`;
  const steps = all.map(([s]) => s);
  const losses = all.map(([, l]) => l);
  const [x0, x1] = [steps.reduce((a, b) => Math.min(a, b)), steps.reduce((a, b) => Math.max(a, b))]; // no spread: steps are unbounded
  let [y0, y1] = [losses.reduce((a, b) => Math.min(a, b)), losses.reduce((a, b) => Math.max(a, b))];
  const pad = (y1 - y0) * 0.05 || Math.abs(y0) * 0.05 || 1;
  [y0, y1] = [y0 - pad, y1 + pad];
  const px = (s: number) => M.left + ((s - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const py = (l: number) => H - M.bottom - ((l - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const line = tr.map(([s, l]) => `${px(s).toFixed(1)},${py(l).toFixed(1)}`).join(' ');
  const dots = ev.map(([s, l]) => `<circle cx="${px(s).toFixed(1)}" cy="${py(l).toFixed(1)}" r="3" fill="#d62728"/>`).join('\n');
  const [bx, by] = [M.left, H - M.bottom];
  return head +
    `<path d="M${bx},${M.top} V${by} H${W - M.right}" fill="none" stroke="#444"/>\n` +
    `<text x="${bx - 4}" y="${py(y1 - pad) + 4}" text-anchor="end">${fmt(y1 - pad)}</text>\n` +
    `<text x="${bx - 4}" y="${py(y0 + pad) + 4}" text-anchor="end">${fmt(y0 + pad)}</text>\n` +
    `<text x="${bx}" y="${by + 16}" text-anchor="middle">${x0}</text>\n` +
    `<text x="${W - M.right}" y="${by + 16}" text-anchor="end">step ${x1}</text>\n` +
    `<text x="${bx}" y="${M.top - 10}"><tspan fill="#1f77b4">— train loss</tspan>${ev.length ? '  <tspan fill="#d62728">● eval loss</tspan>' : ''}</text>\n` +
    (tr.length ? `<polyline points="${line}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>\n` : '') +
    (dots ? dots + '\n' : '') + '</svg>\n';
}

export async function writeLossSvg(outDir: string, train: readonly Point[], evals: readonly Point[]): Promise<void> {
  const path = join(outDir, LOSS_SVG);
  const tmp = `${path}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, lossCurveSvg(train, evals));
  await fsp.rename(tmp, path);
}
