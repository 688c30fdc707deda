/**
 * The proof figures, gathered from the sections of one `npm run bench`
 * run and printed together at its end (bench/run.ts): each figure as measured,
 * the bar it is held to, and whether this run cleared it. Sections call
 * `prove` where they compute a figure; a section run alone prints only its own.
 */

export interface Proof {
  /** What was measured, e.g. "GEMM [128×768]·[768×3072]ᵀ, 1 thread: native / onnxruntime". */
  figure: string;
  value: number;
  /** How the value reads: '×' for ratios, '%' for fractions (value 0–1), or a unit. */
  unit: '×' | '%' | string;
  /** The bar (value ≥ atLeast), if it sets one. */
  atLeast?: number;
  /** The section that measured it. */
  section: string;
}

const proofs: Proof[] = [];

export function prove(section: string, figure: string, value: number, unit: Proof['unit'], atLeast?: number): void {
  proofs.push({ section, figure, value, unit, atLeast });
}

function format(value: number, unit: Proof['unit']): string {
  if (!Number.isFinite(value)) return '—';
  if (unit === '%') return `${(100 * value).toFixed(0)}%`;
  if (unit === '×') return `${value.toFixed(2)}×`;
  return `${value.toFixed(value >= 100 ? 0 : 1)} ${unit}`;
}

/** The gathered figures as a markdown table (empty when no section proved anything). */
export function proofTable(): string {
  if (proofs.length === 0) return '';
  const rows = proofs.map((p) => {
    const bar = p.atLeast === undefined ? '—' : `≥ ${format(p.atLeast, p.unit)}`;
    const met = p.atLeast === undefined ? '' : p.value >= p.atLeast ? 'yes' : 'no';
    return `| ${p.section} | ${p.figure} | ${format(p.value, p.unit)} | ${bar} | ${met} |`;
  });
  return ['| section | figure | this run | the issue asks | met |', '|---|---|---:|---:|:---:|', ...rows].join('\n');
}
