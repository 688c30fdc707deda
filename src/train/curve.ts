/**
 * The loss curve of a run as numbers (CSV) and as a picture (a self-drawn SVG
 * line chart with axes), written beside the checkpoint.
 */
import { writeFile } from 'node:fs/promises';

export interface CurvePoint {
  step: number;
  loss: number;
  lr: number;
}

export function curveCsv(points: readonly CurvePoint[]): string {
  return 'step,loss,lr\n' + points.map((p) => `${p.step},${p.loss},${p.lr}`).join('\n') + '\n';
}

/** An SVG line chart of loss against step, y axis from 0 to the highest loss. */
export function curveSvg(points: readonly CurvePoint[], title = 'training loss'): string {
  const w = 640;
  const h = 360;
  const m = { left: 56, right: 16, top: 32, bottom: 40 };
  const maxStep = Math.max(1, ...points.map((p) => p.step));
  const maxLoss = Math.max(1e-9, ...points.map((p) => p.loss));
  const x = (s: number): number => m.left + (s / maxStep) * (w - m.left - m.right);
  const y = (l: number): number => h - m.bottom - (l / maxLoss) * (h - m.top - m.bottom);
  const path = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' ');
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const yTicks = ticks.map((t) => `<line x1="${m.left - 4}" x2="${w - m.right}" y1="${y(t * maxLoss)}" y2="${y(t * maxLoss)}" stroke="#ddd"/><text x="${m.left - 8}" y="${y(t * maxLoss) + 4}" text-anchor="end">${(t * maxLoss).toFixed(2)}</text>`);
  const xTicks = ticks.map((t) => `<text x="${x(t * maxStep)}" y="${h - m.bottom + 16}" text-anchor="middle">${Math.round(t * maxStep)}</text>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="11">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2}" y="18" text-anchor="middle" font-size="14">${title}</text>`,
    ...yTicks,
    ...xTicks,
    `<text x="${w / 2}" y="${h - 6}" text-anchor="middle">step</text>`,
    `<path d="${path}" fill="none" stroke="#1f6feb" stroke-width="1.5"/>`,
    '</svg>',
    '',
  ].join('\n');
}

/** Write `<prefix>.csv` and `<prefix>.svg`. */
export async function writeCurve(prefix: string, points: readonly CurvePoint[], title?: string): Promise<void> {
  await writeFile(`${prefix}.csv`, curveCsv(points));
  await writeFile(`${prefix}.svg`, curveSvg(points, title));
}
