/**
 * A trace file told step by step in the words of the seed texts: tokenize,
 * embed, add positions, attend, feed forward, normalise, project, softmax,
 * and (for decoders) pick the next token and repeat.
 */
import { decodeTensor } from './encoding.js';
import type { BeamRecord, BeamStepRecord, BeamTrace, HeadFocus, HypothesisInfo, RankedToken, StackSummary, TokenInfo, TraceFile, VectorSummary } from './report.js';

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

/** The tokens of the generating stack (the decoder's in encoder-decoders). */
function ownTokens(file: TraceFile): TokenInfo[] {
  return (file.model.family === 'encoder-decoder' ? file.tokens.decoder : file.tokens.input) ?? [];
}

/** Where the new token of a step looks most, per attention hook and head; `own` are the tokens its self-attention sees. */
function stepAttention(file: TraceFile, attention: Record<string, string>, own: readonly TokenInfo[], indent = '      '): string[] {
  const lines: string[] = [];
  for (const [name, key] of Object.entries(attention)) {
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
    lines.push(`${indent}${name.replace(/\.pattern$/, '')}: ${parts.join('  ')}`);
  }
  return lines;
}

const words = (tokens: readonly TokenInfo[]): string => (tokens.length ? tokens.map(show).join(' ') : '(nothing yet)');
const signed = (x: number): string => (x >= 0 ? ` ${x.toFixed(3)}` : x.toFixed(3));

/** The tokens a beam's last token attends over: the shared prompt (or decoder start), then its own generated tokens. */
function beamKeys(file: TraceFile, b: BeamRecord): TokenInfo[] {
  return [...ownTokens(file).slice(0, b.position + 1 - b.generated.length), ...b.generated];
}

function candidateFate(c: BeamStepRecord['candidates'][number], step: BeamStepRecord, numBeams: number): string {
  if (c.fate === 'continues') return `→ beam ${c.slot}`;
  if (c.fate === 'finished') {
    const f = step.finished.find((x) => x.beam === c.beam);
    return f ? `→ finished, score ${f.hypothesis.score.toFixed(3)}${f.kept ? '' : ' (not among the best, discarded)'}` : '→ finished';
  }
  if (c.fate === 'eos-late') return `→ ignored: an end token ranked below the first ${numBeams}`;
  return `→ spare: the ${numBeams} beams were already filled`;
}

function hypothesisLine(h: HypothesisInfo, rank: number, lengthPenalty: number): string {
  const lineage = h.beamIndices.join(' → ');
  const how = h.finishedAt === null ? 'still running at the end' : `finished at step ${h.finishedAt + 1}`;
  return `    ${rank + 1}. ${words(h.generated)}  score ${h.score.toFixed(3)} = ${h.sumLogprobs.toFixed(3)} / ${h.length}^${lengthPenalty}  (${how}; beams ${lineage})${h.returned ? '  ← returned' : ''}`;
}

/** Why an input with numBeams finished hypotheses stops, per early_stopping (HF BeamHypotheses.is_done). */
const DONE_RULE: Record<string, string> = {
  true: ' (early stopping: that is enough)',
  false: ' and the best running beam, scored at its current length, cannot beat the worst of them (HF\'s heuristic)',
  never: ' and no running beam can beat the worst of them even at the longest length still allowed',
};

/** Beam search, step by step: the beams, the candidates they proposed and what became of each, then the ranked hypotheses. */
function describeBeams(file: TraceFile, g: BeamTrace, out: string[]): void {
  const k = g.numBeams;
  out.push(`Beam search keeps the ${k} most likely sequences (the beams) instead of one. At each step every beam proposes its next tokens; a candidate's score is its beam's running score (the sum of the log-probabilities of its tokens) plus the new token's log-probability. The best ${2 * k} candidates are ranked: the first ${k} that do not end the sequence become the next beams, and an end-of-sequence candidate ranked among the first ${k} becomes a finished hypothesis, scored sum / length^${g.lengthPenalty} (length: generated tokens, the end token included).`);
  for (const s of g.steps) {
    const copies = s.step === 0 && k > 1 ? ` (the other ${k - 1} start as copies of it, held at −1e9 so that the same sequence is not chosen twice)` : '';
    out.push('', `  step ${s.step + 1}: ${s.beams.length} beam${s.beams.length === 1 ? '' : 's'}${copies}`);
    for (const b of s.beams) {
      const norm = b.normalised === null ? '' : `, normalised ${b.normalised.toFixed(3)}`;
      out.push(`    beam ${b.beam}: ${words(b.generated)}   sum ${signed(b.score)}${norm}`);
      const last = b.stages[b.stages.length - 1];
      out.push(`      next (${last.name}): ${candidates(last.top.slice(0, 3))}`);
      for (const line of stepAttention(file, b.attention, beamKeys(file, b))) out.push(line);
    }
    out.push(`    the best ${s.candidates.length} candidates, by sum of log-probabilities:`);
    s.candidates.forEach((c, rank) => {
      out.push(`      ${String(rank + 1).padStart(2)}. beam ${c.beam} + ${show(c.token)} (id ${c.token.id})  log-prob ${signed(c.logprob)}  sum ${signed(c.score)}  ${candidateFate(c, s, k)}`);
    });
    for (const f of s.finished) if (f.evicted) out.push(`    it pushed out ${words(f.evicted.generated)} (score ${f.evicted.score.toFixed(3)}): only the ${k} best hypotheses are kept`);
    if (s.dropped.length) out.push(`    dropped: ${s.dropped.map((b) => `beam ${b}`).join(', ')} (no candidate of ${s.dropped.length === 1 ? 'it' : 'theirs'} was kept)`);
    if (s.done) out.push(`    done: ${k} hypotheses are finished${DONE_RULE[String(g.earlyStopping)] ?? ''}`);
  }
  out.push('', `  Finished hypotheses, best first (beams: the beam each generated token came from, HF's beam_indices):`);
  g.hypotheses.forEach((h, rank) => out.push(hypothesisLine(h, rank, g.lengthPenalty)));
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
    const b = g.beam;
    const mode = b ? `beam search: ${b.numBeams} beams, length penalty ${b.lengthPenalty}, early stopping ${b.earlyStopping}` : g.mode;
    out.push('', `## Generate (${mode}${g.stages.length ? `; score stages: ${g.stages.join(' → ')}` : ''})`);
    if (!b) out.push('Each step feeds the sequence so far, takes the scores of the last position, picks a token and appends it.');
    for (const s of g.steps) {
      out.push(`  step ${s.step + 1}: chose ${show(s)} (id ${s.token}), log-probability ${s.logprob.toFixed(3)}`);
      for (const stage of s.stages) out.push(`      ${stage.name.padEnd(20)} ${candidates(stage.top.slice(0, 3))}`);
      for (const line of stepAttention(file, s.attention, ownTokens(file))) out.push(line);
    }
    if (b) describeBeams(file, b, out);
    const reasons: Record<string, string> = {
      eos: 'the end-of-sequence token',
      length: 'the token limit',
      done: `${b?.numBeams} finished hypotheses`,
    };
    out.push(`  stopped: ${reasons[g.reason] ?? g.reason}; generated ${g.generated.map(show).join(' ')}${b ? ` (the best hypothesis, sequence score ${b.sequencesScores[0]?.toFixed(4)})` : ''}`);
  }
  if (file.budget.omitted.length + file.budget.summarised.length > 0) {
    out.push('', `(size cap ${file.budget.maxBytes} bytes: ${file.budget.summarised.length} tensors summarised as top-k, ${file.budget.omitted.length} left out)`);
  }
  return out.join('\n') + '\n';
}
