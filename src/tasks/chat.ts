/**
 * Chat: a conversation rendered with the model's chat template
 * (tokenizer_config.json `chat_template`, a Jinja template, rendered as
 * transformers' `apply_chat_template` does), and a chat job that keeps its KV
 * cache between turns so that each turn feeds only the tokens it adds.
 */
import { Template } from '@huggingface/jinja';
import { ConfigError } from '../errors.js';
import { generate, type GenerateCallbacks } from '../generation/generate.js';
import { tokenList, type GenerateOptions } from '../generation/options.js';
import { streamGenerate, type StreamChunk } from '../generation/streamer.js';
import type { DecodingSession, GenerativeModel } from '../generation/types.js';
import { CausalLMSession } from '../nn/causal-lm.js';
import type { HookPoints } from '../nn/hooks.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TextGenerator } from './generate.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  content: string;
}

export interface ChatTemplateOptions {
  /** End with the header of an assistant turn, so that the model answers. */
  addGenerationPrompt?: boolean;
  /** The template to use instead of tokenizer_config.json's. */
  template?: string;
  /** Extra template variables, e.g. `{ enable_thinking: false }` (Qwen3). */
  variables?: Record<string, unknown>;
}

const SPECIAL_TOKENS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

/** A special token as tokenizer_config.json writes it: a string or an AddedToken object with `content`. */
function tokenString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates of which "default" is used. */
export function chatTemplateOf(config: Record<string, unknown>): string {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((e: { name?: unknown }) => e && e.name === 'default') as { template?: unknown } | undefined;
    if (named && typeof named.template === 'string') return named.template;
    throw new ConfigError(`tokenizer_config.json: chat_template is a list without a "default" entry (names: ${t.map((e: { name?: unknown }) => String(e?.name)).join(', ')})`);
  }
  throw new ConfigError('this tokenizer has no chat_template (tokenizer_config.json); pass a template, or use plain generation');
}

/**
 * Render messages with a chat template, as `tokenizer.apply_chat_template(messages,
 * tokenize=False, add_generation_prompt=…)`: the template sees `messages`,
 * `add_generation_prompt` and the special-token strings (`bos_token`, `eos_token`, …);
 * @huggingface/jinja supplies `raise_exception` and `strftime_now` and renders
 * with Jinja's trim_blocks and lstrip_blocks, as transformers configures it.
 */
export function applyChatTemplate(tokenizerConfig: Record<string, unknown>, messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  const template = new Template(options.template ?? chatTemplateOf(tokenizerConfig));
  const context: Record<string, unknown> = {
    messages,
    add_generation_prompt: options.addGenerationPrompt ?? false,
  };
  for (const name of SPECIAL_TOKENS) {
    const value = tokenString(tokenizerConfig[name]);
    if (value !== undefined) context[name] = value;
  }
  try {
    return template.render({ ...context, ...options.variables });
  } catch (error) {
    // The template's own raise_exception(...) and rendering failures.
    throw new ConfigError(`chat template: ${(error as Error).message}`);
  }
}

export interface ChatOptions extends ChatTemplateOptions {
  /** A system message placed first in the conversation. */
  system?: string;
  /** Hooks attached to every forward pass of the conversation. */
  hooks?: HookPoints;
}

/**
 * A conversation with a decoder-only model. Each turn renders the whole
 * conversation with the chat template, but feeds the model only the tokens
 * after the longest prefix already in its KV cache.
 */
export class Chat {
  readonly messages: ChatMessage[] = [];
  private session?: CausalLMSession;
  /** The tokens whose keys and values are in the cache, in order. */
  private cached: number[] = [];
  /** Tokens fed per forward pass, for tests and traces. */
  readonly fedLengths: number[] = [];

  constructor(
    readonly generator: TextGenerator,
    private readonly options: ChatOptions = {},
  ) {
    this.reset();
  }

  /** Start a new conversation (keeps the system message). */
  reset(): void {
    this.messages.length = 0;
    if (this.options.system !== undefined) this.messages.push({ role: 'system', content: this.options.system });
    this.session = undefined;
    this.cached = [];
  }

  /** Tokens in the KV cache. */
  get cachedLength(): number {
    return this.cached.length;
  }

  /** The conversation so far plus `user`, rendered and tokenised with the assistant prompt. */
  private promptIds(user: string): number[] {
    const text = applyChatTemplate(this.generator.tokenizer.config, [...this.messages, { role: 'user', content: user }], { ...this.options, addGenerationPrompt: true });
    // The template writes the special tokens itself (HF apply_chat_template tokenises without adding them).
    return this.generator.tokenizer.encode(text, { addSpecialTokens: false });
  }

  /** Feed a full prompt, reusing the cached prefix; returns the logits of its last position. */
  private feedPrompt(ids: number[]): Tensor {
    let common = 0;
    while (common < Math.min(ids.length, this.cached.length) && ids[common] === this.cached[common]) common++;
    // At least one token must be fed to get the next-token logits.
    common = Math.min(common, ids.length - 1);
    if (!this.session || common === 0) {
      this.session = new CausalLMSession(this.generator.model, { inputIds: [ids], attentionMask: [ids.map(() => 1)], expandBy: 1 }, this.options.hooks);
      this.cached = [];
      common = 0;
    } else if (common < this.cached.length) {
      this.session.truncate(common);
      this.cached = this.cached.slice(0, common);
    }
    return this.feed([ids.slice(common)]);
  }

  private feed(ids: readonly (readonly number[])[]): Tensor {
    const session = this.session as CausalLMSession;
    this.fedLengths.push(ids[0].length);
    this.cached.push(...ids[0]);
    return session.step(ids);
  }

  /** The model seen by generate(): its session is this conversation's, continued. */
  private continuingModel(): GenerativeModel {
    const model = this.generator.model;
    return {
      isEncoderDecoder: false,
      vocabSize: model.vocabSize,
      startSession: (): DecodingSession => {
        let first = true;
        return {
          step: (ids) => {
            if (!first) return this.feed(ids);
            first = false;
            return this.feedPrompt([...ids[0]]);
          },
          reorder: (indices) => {
            if (indices.length !== 1 || indices[0] !== 0) throw new ConfigError('a chat keeps one conversation: beam search and several return sequences are not available');
          },
        };
      },
    };
  }

  private checkOptions(options: GenerateOptions): void {
    if ((options.numBeams ?? 1) > 1 || (options.numReturnSequences ?? 1) > 1) {
      throw new ConfigError('a chat keeps one conversation: numBeams and numReturnSequences must be 1');
    }
  }

  private finishTurn(user: string, sequence: number[], promptLength: number, options: GenerateOptions): string {
    const eos = tokenList(options.eosTokenId ?? this.generator.defaults.eosTokenId);
    let generated = sequence.slice(promptLength);
    const end = generated.findIndex((t) => eos.includes(t));
    if (end !== -1) generated = generated.slice(0, end);
    const reply = this.generator.tokenizer.decode(generated);
    this.messages.push({ role: 'user', content: user }, { role: 'assistant', content: reply });
    return reply;
  }

  /** Answer one user message; returns the assistant's reply. */
  send(user: string, options: GenerateOptions = {}, callbacks: GenerateCallbacks = {}): string {
    this.checkOptions(options);
    const prompt = this.promptIds(user);
    const decode = (ids: number[]) => this.generator.tokenizer.decode(ids);
    const result = generate(this.continuingModel(), { inputIds: [prompt] }, options, this.generator.defaults, { decode, ...callbacks });
    return this.finishTurn(user, result.sequences[0], prompt.length, options);
  }

  /** Answer one user message token by token; the conversation is updated when the stream ends. */
  async *stream(user: string, options: GenerateOptions = {}, callbacks: GenerateCallbacks = {}): AsyncGenerator<StreamChunk> {
    this.checkOptions(options);
    const prompt = this.promptIds(user);
    const decode = (ids: number[]) => this.generator.tokenizer.decode(ids);
    for await (const chunk of streamGenerate(this.continuingModel(), { inputIds: [prompt] }, options, this.generator.defaults, { ...callbacks, decode })) {
      if (chunk.done && chunk.result) this.finishTurn(user, chunk.result.sequences[0], prompt.length, options);
      yield chunk;
    }
  }
}
