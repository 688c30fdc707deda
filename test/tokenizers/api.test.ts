/**
 * The tokenizer API beyond plain encoding: older file layouts, batches with padding
 * and truncation, special-token ids, `explain`, typed errors, and the CLI command.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { FormatError, UnsupportedError, ConfigError } from '../../src/errors.js';
import { runTokenize, tokenizeLine } from '../../src/cli/commands/tokenize.js';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { loadTokenizer } from '../../src/tokenizers/load-node.js';
import { checkCase, fixtureDir, fixtureTokenizer, readJsonLines, type Case } from './fixtures.js';

function readFixtureJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
}

function withTempDir(files: Record<string, string>, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'glassformer-tok-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return body(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

function mismatches(tokenizer: Tokenizer, cases: Case[]): string[] {
  return cases.flatMap((c) => checkCase(tokenizer, c).map((d) => `${JSON.stringify(c.text).slice(0, 60)}: ${d}`));
}

describe('older layouts load into the same pipeline', () => {
  it('vocab.txt (BERT WordPiece) gives the ids of bert-base-uncased/tokenizer.json on every case', async () => {
    const model = readFixtureJson('bert-base-uncased').model as { vocab: Record<string, number> };
    const lines = Object.entries(model.vocab).sort((a, b) => a[1] - b[1]).map(([token]) => token);
    await withTempDir({ 'vocab.txt': lines.join('\n') + '\n', 'tokenizer_config.json': '{"do_lower_case": true}' }, async (dir) => {
      const tokenizer = await loadTokenizer(dir);
      assert.equal(tokenizer.model.type, 'WordPiece');
      const bad = mismatches(tokenizer, readJsonLines<Case>('bert-base-uncased', 'cases.jsonl'));
      assert.deepEqual(bad.slice(0, 5), [], `${bad.length} mismatches`);
    });
  });

  it('vocab.json + merges.txt (GPT-2 BPE) gives the ids of gpt2/tokenizer.json on every case', async () => {
    const model = readFixtureJson('gpt2').model as { vocab: Record<string, number>; merges: string[] };
    const files = {
      'vocab.json': JSON.stringify(model.vocab),
      'merges.txt': '#version: 0.2\n' + model.merges.join('\n') + '\n',
      'special_tokens_map.json': '{"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}',
      'tokenizer_config.json': '{"clean_up_tokenization_spaces": true}',
    };
    await withTempDir(files, async (dir) => {
      const tokenizer = await loadTokenizer(dir);
      assert.equal(tokenizer.eosTokenId, 50256);
      const bad = mismatches(tokenizer, readJsonLines<Case>('gpt2', 'cases.jsonl'));
      assert.deepEqual(bad.slice(0, 5), [], `${bad.length} mismatches`);
    });
  });

  it('infers the model type of files without model.type (BERT WordPiece, T5 Unigram)', async () => {
    assert.equal((await fixtureTokenizer('bert-base-uncased')).model.type, 'WordPiece');
    assert.equal((await fixtureTokenizer('t5-small')).model.type, 'Unigram');
  });

  it('reports a folder with no tokenizer files', async () => {
    await withTempDir({}, async (dir) => {
      await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof FormatError && /no tokenizer\.json, vocab\.txt/.test(e.message));
    });
  });
});

describe('special tokens and vocabulary', () => {
  it('names the ids from tokenizer_config.json / special_tokens_map.json', async () => {
    const gpt2 = await fixtureTokenizer('gpt2');
    assert.equal(gpt2.bosTokenId, 50256);
    assert.equal(gpt2.eosTokenId, 50256);
    assert.equal(gpt2.vocabSize, 50257);
    const llama3 = await fixtureTokenizer('llama3');
    assert.equal(llama3.bosTokenId, 128000);
    assert.equal(llama3.vocabSize, 128256);
    const t5 = await fixtureTokenizer('t5-small');
    assert.equal(t5.eosTokenId, 1);
    assert.equal(t5.padTokenId, 0);
    assert.equal(t5.tokenToId('<extra_id_0>'), 32099);
    assert.equal(t5.idToToken(32000), '<extra_id_99>');
  });

  it('turns a lone surrogate into U+FFFD, as the UTF-8 based Rust library does', async () => {
    const gpt2 = await fixtureTokenizer('gpt2');
    assert.deepEqual(gpt2.encode('a\ud800b').ids, gpt2.encode('a\ufffdb').ids);
  });

  it('reports offsets in UTF-16 code units of the original text', async () => {
    const bert = await fixtureTokenizer('bert-base-uncased');
    const e = bert.encode('Héllo, 😀 world');
    assert.deepEqual(e.tokens, ['[CLS]', 'hello', ',', '[UNK]', 'world', '[SEP]']);
    assert.deepEqual(e.offsets, [[0, 0], [0, 5], [5, 6], [7, 9], [10, 15], [0, 0]]);
    assert.deepEqual(e.specialTokensMask, [1, 0, 0, 0, 0, 1]);
  });
});

describe('batches, padding and truncation', () => {
  it('pads to the longest on the right with the pad token, attention mask 0', async () => {
    const bert = await fixtureTokenizer('bert-base-uncased');
    const [a, b] = bert.encodeBatch(['hello world', 'hi'], { padding: 'longest' });
    assert.deepEqual(a.ids, [101, 7592, 2088, 102]);
    assert.deepEqual(b.ids, [101, 7632, 102, 0]);
    assert.deepEqual(b.attentionMask, [1, 1, 1, 0]);
    assert.deepEqual(b.tokens, ['[CLS]', 'hi', '[SEP]', '[PAD]']);
  });

  it('pads on the left and to a fixed length', async () => {
    const t5 = await fixtureTokenizer('t5-small');
    const [e] = t5.encodeBatch(['Hello'], { padding: 'max_length', maxLength: 5, paddingSide: 'left' });
    assert.deepEqual(e.ids, [0, 0, 0, 8774, 1]);
    assert.deepEqual(e.attentionMask, [0, 0, 0, 1, 1]);
  });

  it('truncates the longest sequence of a pair first, keeping room for special tokens', async () => {
    const bert = await fixtureTokenizer('bert-base-uncased');
    const [e] = bert.encodeBatch([['one two three four five six', 'seven eight']], { truncation: true, maxLength: 8 });
    assert.deepEqual(e.tokens, ['[CLS]', 'one', 'two', 'three', '[SEP]', 'seven', 'eight', '[SEP]']);
    assert.deepEqual(e.typeIds, [0, 0, 0, 0, 0, 1, 1, 1]);
    const [single] = bert.encodeBatch(['one two three four'], { truncation: true, maxLength: 4 });
    assert.deepEqual(single.tokens, ['[CLS]', 'one', 'two', '[SEP]']);
  });

  it('refuses padding without a pad token', async () => {
    const gpt2 = await fixtureTokenizer('gpt2');
    assert.throws(() => gpt2.encodeBatch(['a', 'bb'], { padding: 'longest' }), ConfigError);
  });

  it('encodes a batch exactly as one-by-one encoding', async () => {
    const llama2 = await fixtureTokenizer('llama2');
    const texts = ['Hello world', ' a </s> b', '<s>a', ''];
    assert.deepEqual(
      llama2.encodeBatch(texts).map((e) => e.ids),
      texts.map((t) => llama2.encode(t).ids),
    );
  });
});

describe('explain shows every step', () => {
  it('BPE: normalized text, pre-tokens and the merges applied, in order', async () => {
    const gpt2 = await fixtureTokenizer('gpt2');
    const x = gpt2.explain('Hello world<|endoftext|>');
    assert.equal(x.segments.length, 2);
    const [text, added] = x.segments;
    assert.equal(added.kind, 'added-token');
    assert.equal(text.kind, 'text');
    if (text.kind !== 'text') return;
    assert.deepEqual(text.preTokens.map((p) => p.text), ['Hello', 'Ġworld']);
    const trace = text.preTokens[0].trace;
    assert.equal(trace.model, 'BPE');
    if (trace.model !== 'BPE') return;
    assert.deepEqual(trace.initial, ['H', 'e', 'l', 'l', 'o']);
    assert.equal(trace.merges[trace.merges.length - 1].merged, 'Hello');
    assert.ok(trace.merges.every((m, i) => i === 0 || m.rank >= 0));
    assert.deepEqual(x.encoding.ids, [15496, 995, 50256]);
  });

  it('WordPiece pieces and Unigram segmentation with scores', async () => {
    const bert = await fixtureTokenizer('bert-base-uncased');
    const b = bert.explain('Tokenization');
    assert.ok(b.segments[0].kind === 'text');
    if (b.segments[0].kind === 'text') {
      assert.equal(b.segments[0].normalized, 'tokenization');
      assert.deepEqual(b.segments[0].preTokens[0].trace, { model: 'WordPiece', pieces: ['token', '##ization'], unknown: false, tooLong: false });
    }
    const t5 = await fixtureTokenizer('t5-small');
    const u = t5.explain('Hello');
    if (u.segments[0].kind === 'text') {
      const trace = u.segments[0].preTokens[0].trace;
      assert.equal(trace.model, 'Unigram');
      if (trace.model === 'Unigram') assert.deepEqual(trace.pieces.map((p) => p.piece), ['▁Hello']);
    }
  });
});

describe('errors name what is wrong', () => {
  it('an unknown component type names it and lists the supported ones', async () => {
    const json = readFixtureJson('bert-base-uncased');
    json.normalizer = { type: 'Fancy' };
    assert.throws(
      () => Tokenizer.fromJSON(json),
      (e: unknown) => e instanceof UnsupportedError && /normalizer\.type: unknown normalizer type "Fancy"; supported: NFC, NFD/.test(e.message),
    );
    json.normalizer = null;
    json.decoder = { type: 'Sequence', decoders: [{ type: 'Mystery' }] };
    assert.throws(() => Tokenizer.fromJSON(json), /decoder\.decoders\[0\]\.type: unknown decoder type "Mystery"/);
  });

  it('a malformed field is named with what was expected and found', async () => {
    const json = readFixtureJson('gpt2');
    const model = json.model as Record<string, unknown>;
    const merges = model.merges as unknown[];
    merges[3] = 42;
    assert.throws(
      () => Tokenizer.fromJSON(json),
      (e: unknown) => e instanceof FormatError && e.message === 'tokenizer.json: model.merges[3]: expected "left right" or ["left", "right"], found 42',
    );
    assert.throws(() => Tokenizer.fromJSON({ model: { type: 'BPE', vocab: [], merges: [] } }), /model\.vocab: expected an object, found \[\]/);
    assert.throws(() => Tokenizer.fromJSON({}), /model: expected the model object/);
  });

  it('BPE dropout is refused rather than silently ignored', () => {
    assert.throws(() => Tokenizer.fromJSON({ model: { type: 'BPE', dropout: 0.1, vocab: {}, merges: [] } }), /dropout is 0.1/);
  });
});

describe('glassformer tokenize', () => {
  class Capture extends Writable {
    text = '';
    override _write(chunk: Buffer, _enc: string, done: () => void): void {
      this.text += chunk.toString();
      done();
    }
  }
  async function* linesOf(...lines: string[]): AsyncGenerator<string> {
    yield* lines;
  }

  it('writes one JSON line per input line with the documented fields', async () => {
    const llama2 = await fixtureTokenizer('llama2');
    const out = new Capture();
    await runTokenize(llama2, linesOf('{"text": "Hello world"}', '', '{"text": "a", "text_pair": "b"}'), out);
    const records = out.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(records.length, 2);
    assert.deepEqual(records[0], {
      ids: [1, 15043, 3186],
      tokens: ['<s>', '▁Hello', '▁world'],
      type_ids: [0, 0, 0],
      offsets: [[0, 0], [0, 5], [5, 11]],
      ids_no_special: [15043, 3186],
      decoded: '<s> Hello world',
      decoded_skip_special: 'Hello world',
    });
    assert.deepEqual(records[1].type_ids, [0, 0, 1, 1]);
  });

  it('agrees with cases.jsonl field for field (decodes without transformers clean-up)', async () => {
    const gpt2 = await fixtureTokenizer('gpt2');
    for (const c of readJsonLines<Case>('gpt2', 'cases.jsonl').slice(0, 100)) {
      const record = tokenizeLine(gpt2, JSON.stringify({ text: c.text }), 1);
      assert.deepEqual(
        [record.ids, record.tokens, record.ids_no_special, record.decoded, record.decoded_skip_special],
        [c.ids, c.tokens, c.ids_no_special, c.decoded, c.decoded_skip_special],
      );
    }
  });

  it('names the line of a bad input', async () => {
    const gpt2 = await fixtureTokenizer('gpt2');
    assert.throws(() => tokenizeLine(gpt2, '{"text": 3}', 7), /stdin: line 7: expected \{"text": string/);
    await assert.rejects(runTokenize(gpt2, linesOf('{"text": "ok"}', '{oops'), new Capture()), /line 2: not valid JSON/);
  });
});
