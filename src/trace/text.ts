/**
 * A trace file told step by step in the words of the seed texts: tokenize,
 * embed, add positions, attend, feed forward, normalise, project, softmax,
 * and (for decoders) pick the next token and repeat.
 */
import { decodeTensor } from './encoding.js';
import type { HeadFocus, RankedToken, StackSummary, StepRecord, TokenInfo, TraceFile, VectorSummary } from './report.js';

const show = (t: { text: string }): string => JSON.stringify(t.text);
const pct = (p: number): string => `${(100 * p).toFixed(1)}%`;
const num = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(3));

function vector(v: VectorSummary): string {
  return `[${v.first.map(num).join(', ')}, …]  ‖·‖ = ${num(v.norm)}`;
}

function candidates(top: readonly RankedToken[]): string {
  return top.map((t) => `${show(t)} (id ${t.id}) ${pct(t.prob)}`).join(', ');
}

function stackName(s: StackSummary): string {
  return s.prefix === '' ? 'the model' : s.prefix === 'encoder.' ? 'the encoder' : 'the decoder';
}

function focusLine(f: HeadFocus, queries: readonly TokenInfo[], keys: readonly TokenInfo[]): string {
  const pairs = f.key.map((key, q) => `${show(queries[q])}→${show(keys[key])} ${f.weight[q].toFixed(2)}`);
  return `      head ${f.head}: ${pairs.join('  ')}`;
}

function describeStack(file: TraceFile, s: StackSummary, out: string[]): void {
  const tokens = (s.tokens === 'decoder' ? file.tokens.decoder : file.tokens.input) ?? [];
  const source = file.tokens.input;
  out.push('', `## Inside ${stackName(s)} (${s.blocks.length} layers)`);
  out.push('', 'Embed: each token id selects one row of the embedding matrix, a vector of numbers that stands for the token.');
  s.embedding.forEach((v, p) => out.push(`  ${String(p).padStart(3)} ${show(tokens[p]).padEnd(16)} ${vector(v)}`));
  out.push('', `Position: ${s.positional.note}.`);
  s.positional.vectors?.forEach((v, p) => out.push(`  ${String(p).padStart(3)} ${vector(v)}`));
  const rotation = s.positional.rotation;
  if (rotation) {
    out.push(`  layer 0 turns query pairs ${rotation.pairs.join(', ')} (head 0) by these angles, in radians:`);
    rotation.angles.forEach((row, p) => out.push(`  ${String(p).padStart(3)} ${show(tokens[p]).padEnd(16)} ${row.map((v) => v.toFixed(3).padStart(7)).join('')}`));
  }
  const bias = s.positional.bias;
  if (bias) {
    out.push(`  bias added to the score by distance key − query: ${bias.distances.map((d) => (d > 0 ? `+${d}` : String(d)).padStart(7)).join('')}`);
    bias.heads.forEach((row, h) => out.push(`  ${`head ${h}`.padEnd(47)}${row.map((v) => num(v).padStart(7)).join('')}`));
  }
  out.push('', `Residual stream entering layer 0: norms ${s.inputNorm.map(num).join(', ')}`);
  for (const b of s.blocks) {
    out.push('', `### Layer ${b.layer}`);
    out.push('    self-attention (each token → the token it attends to most, and the weight):');
    for (const f of b.attention) out.push(focusLine(f, tokens, tokens));
    if (b.crossAttention) {
      out.push('    cross-attention (each output token → the input token it attends to most):');
      for (const f of b.crossAttention) out.push(focusLine(f, tokens, source));
    }
    out.push('    feed-forward: each position is expanded, passed through the activation and projected back, then added to the residual stream.');
    out.push(`    residual stream norms after the layer: ${b.residNorm.map(num).join(', ')}`);
  }
}

/** Where the new token of a step looks most, per attention hook and head. */
function stepAttention(file: TraceFile, s: StepRecord): string[] {
  const lines: string[] = [];
  const own = (file.model.family === 'encoder-decoder' ? file.tokens.decoder : file.tokens.input) ?? [];
  for (const [name, key] of Object.entries(s.attention)) {
    const encoded = file.tensors[key];
    if (!encoded || encoded.encoding === 'omitted') continue;
    const rows = decodeTensor(encoded, key); // [heads, keys]
    const [heads, keys] = rows.shape;
    const keyTokens = name.includes('cross_attn') ? file.tokens.input : own;
    const v = rows.f32();
    const parts: string[] = [];
    for (let h = 0; h < heads; h++) {
      let best = 0;
      for (let j = 1; j < keys; j++) if (v[h * keys + j] > v[h * keys + best]) best = j;
      parts.push(`h${h}→${show(keyTokens[best] ?? { text: `#${best}` })} ${v[h * keys + best].toFixed(2)}`);
    }
    lines.push(`      ${name.replace(/\.pattern$/, '')}: ${parts.join('  ')}`);
  }
  return lines;
}

/** The trace as plain text for a terminal. */
export function formatTrace(file: TraceFile): string {
  const m = file.model;
  const out: string[] = [];
  const lensStack = m.stacks.find((s) => s.prefix === m.lensStack);
  out.push(`# Trace of ${file.source}`);
  out.push(`${m.summary}`);
  out.push(`family: ${m.family}; ${m.stacks.map((s) => `${s.prefix || 'stack '}${s.layers} layers × ${s.heads} heads, d=${s.dModel}`).join('; ')}`);
  out.push('', '## Tokenize');
  out.push('The text is split into tokens; each token has an id in the vocabulary.');
  // Positions from here on were generated (the forward pass covers the prompt and the continuation).
  const firstGenerated = file.generation?.steps.length ? file.generation.steps[0].position + 1 : Infinity;
  const mark = (p: number) => (p >= firstGenerated ? '  (generated)' : '');
  const own = m.family === 'encoder-decoder' ? 'decoder' : 'input';
  file.tokens.input.forEach((t, p) => out.push(`  ${String(p).padStart(3)}  id ${String(t.id).padStart(6)}  ${show(t)}${own === 'input' ? mark(p) : ''}`));
  if (file.tokens.decoder) {
    out.push('Decoder tokens (the output so far, starting with the decoder start token):');
    file.tokens.decoder.forEach((t, p) => out.push(`  ${String(p).padStart(3)}  id ${String(t.id).padStart(6)}  ${show(t)}${mark(p)}`));
  }
  for (const s of file.stacks) describeStack(file, s, out);

  if (file.predictions && lensStack) {
    const tokens = (m.family === 'encoder-decoder' ? file.tokens.decoder : file.tokens.input) ?? [];
    out.push('', '## Project and softmax');
    out.push('The last residual stream is normalised, multiplied by the unembedding matrix to give one score (logit) per vocabulary token, and softmax turns the scores into probabilities.');
    file.predictions.forEach((top, p) => out.push(`  after ${show(tokens[p])} (position ${p}): ${candidates(top)}`));
  }
  if (file.classification) {
    out.push('', '## Classify');
    out.push('The classification head reads the first token\'s final vector (the pooler) and scores each label; softmax turns the scores into probabilities.');
    for (const c of file.classification) out.push(`  ${c.label.padEnd(16)} ${pct(c.prob).padStart(7)}  (logit ${num(c.logit)})`);
  }
  if (file.lens) {
    out.push('', '## Logit lens: what each layer would predict at the last position');
    const last = file.lens.layers[0].positions.length - 1;
    for (const layer of file.lens.layers) out.push(`  ${layer.label.padEnd(12)} ${candidates(layer.positions[last].slice(0, 3))}`);
  }
  if (file.attribution) {
    const a = file.attribution;
    out.push('', `## Which components pushed ${show(a.token)} at the last position (direct logit attribution)`);
    const widest = Math.max(...a.components.map((c) => Math.abs(c.value)), 1e-9);
    for (const c of a.components) {
      const bar = (c.value >= 0 ? '+' : '-').repeat(Math.max(1, Math.round((20 * Math.abs(c.value)) / widest)));
      out.push(`  ${c.label.padEnd(16)} ${c.value.toFixed(3).padStart(9)}  ${bar}`);
    }
    out.push(`  ${'biases'.padEnd(16)} ${a.bias.toFixed(3).padStart(9)}`);
    out.push(`  sum ${a.sum.toFixed(3)}, logit ${a.logit.toFixed(3)}${a.exact ? '' : ' (post-norm: these do not add up; see docs/trace.md)'}`);
  }
  if (file.generation) {
    const g = file.generation;
    out.push('', `## Generate (${g.mode}${g.stages.length ? `; score stages: ${g.stages.join(' → ')}` : ''})`);
    out.push('Each step feeds the sequence so far, takes the scores of the last position, picks a token and appends it.');
    for (const s of g.steps) {
      out.push(`  step ${s.step + 1}: chose ${show(s)} (id ${s.token}), log-probability ${s.logprob.toFixed(3)}`);
      for (const stage of s.stages) out.push(`      ${stage.name.padEnd(20)} ${candidates(stage.top.slice(0, 3))}`);
      for (const line of stepAttention(file, s)) out.push(line);
    }
    out.push(`  stopped: ${g.reason === 'eos' ? 'the end-of-sequence token' : 'the token limit'}; generated ${g.generated.map(show).join(' ')}`);
  }
  if (file.budget.omitted.length + file.budget.summarised.length > 0) {
    out.push('', `(size cap ${file.budget.maxBytes} bytes: ${file.budget.summarised.length} tensors summarised as top-k, ${file.budget.omitted.length} left out)`);
  }
  return out.join('\n') + '\n';
}
