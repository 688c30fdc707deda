/**
 * Dropout in training, where Hugging Face's models apply it once
 * `model.train()` is called (Srivastava et al. 2014; the Trainer always trains
 * in train mode), with the probabilities of the model's config.json.
 *
 * Every place a family applies `nn.Dropout` is one of the named hook points
 * of docs/trace.md (the attention probabilities are `attn.pattern`, the
 * sublayer outputs before their residual add are `attn.out` / `mlp.out`, the
 * embedding output is the first block's `resid_pre`, …), so training dropout
 * is a set of hooks: the model code runs unchanged, inference never sees it,
 * and the masks come from the trainer's seeded generator, so a resumed run
 * draws the same ones.
 */
import { UnsupportedError } from '../errors.js';
import { dropout, type RandomSource } from '../ops/dropout.js';
import type { HookPoints } from '../nn/hooks.js';
import type { Tensor } from '../tensor/tensor.js';

type Json = Readonly<Record<string, unknown>>;

/** One kind of dropout: the hook names it applies to and its probability. */
export interface DropoutSite {
  readonly names: RegExp;
  readonly p: number;
  /** The config field the probability comes from (or the default it took). */
  readonly field: string;
}

/** What `dropoutSites` reads: a model's parsed config (every family keeps the JSON as read). */
export interface DropoutConfig {
  readonly modelType: string;
  readonly raw: Json;
}

/** Which head the encoder carries: its dropout sits in the head (BERT family). */
export type DropoutHead = 'masked-lm' | 'sequence-classification' | 'token-classification' | 'base' | string;

// Hook names in any stack: single-stack models have no prefix, encoder-decoders `encoder.` / `decoder.`.
const STACK = '^(?:encoder\\.|decoder\\.)?';
const inBlocks = (suffix: string) => new RegExp(`${STACK}blocks\\.\\d+\\.${suffix}$`);

/** The embedding output as the first block receives it (after the embedding LayerNorm where there is one). */
const EMBEDDING = new RegExp(`${STACK}blocks\\.0\\.resid_pre$`);
const PATTERN = inBlocks('(?:attn|cross_attn)\\.pattern');
const SUBLAYER_OUT = inBlocks('(?:attn|cross_attn|mlp)\\.out');
const ACTIVATION = inBlocks('mlp\\.post');
const MLP_OUT = inBlocks('mlp\\.out');
const FINAL_NORM = new RegExp(`${STACK}ln_final$`);
const POOLER = /^pooler$/;

/** `field` of the config, or the family's default (configs are saved in diff mode: an absent field has its default). */
function probability(raw: Json, field: string, fallback: number): number {
  const v = raw[field];
  return typeof v === 'number' ? v : fallback;
}

function site(names: RegExp, raw: Json, field: string, fallback: number): DropoutSite {
  return { names, p: probability(raw, field, fallback), field };
}

/** The last layer's output, which a token or RoBERTa classifier drops out before reading it. */
function lastHidden(layers: number): RegExp {
  return new RegExp(`^blocks\\.${layers - 1}\\.resid_post$`);
}

function refuseLayerDrop(raw: Json): void {
  for (const field of ['encoder_layerdrop', 'decoder_layerdrop']) {
    const p = probability(raw, field, 0);
    if (p !== 0) throw new UnsupportedError(`config.json: "${field}" is ${p}; LayerDrop (skipping whole layers at random in training, Fan et al. 2019) is not supported: set it to 0`);
  }
}

/**
 * The dropout sites of a family as Hugging Face transformers (v4.47) places
 * them, with its config defaults; sites whose probability is 0 are left out.
 * `head`: the BERT family's task head (its classifier dropout).
 */
export function dropoutSites(config: DropoutConfig, head: DropoutHead = 'base'): DropoutSite[] {
  const raw = config.raw;
  const sites: DropoutSite[] = [];
  switch (config.modelType) {
    case 'gpt2':
      // GPT2Model.drop after wte + wpe; GPT2Attention.attn_dropout / resid_dropout; GPT2MLP.dropout.
      sites.push(site(EMBEDDING, raw, 'embd_pdrop', 0.1), site(PATTERN, raw, 'attn_pdrop', 0.1), site(SUBLAYER_OUT, raw, 'resid_pdrop', 0.1));
      break;
    case 'llama':
    case 'mistral':
    case 'qwen2':
    case 'qwen3':
      sites.push(site(PATTERN, raw, 'attention_dropout', 0));
      break;
    case 'phi3':
      // Phi3DecoderLayer.resid_attn_dropout / resid_mlp_dropout; embd_pdrop's module is not applied in Phi3Model.forward.
      sites.push(site(PATTERN, raw, 'attention_dropout', 0), site(SUBLAYER_OUT, raw, 'resid_pdrop', 0));
      break;
    case 'bert':
    case 'roberta':
    case 'xlm-roberta': {
      // Embeddings: LayerNorm then dropout; BertSelfAttention on the probabilities; BertSelfOutput and BertOutput before the residual add.
      sites.push(site(EMBEDDING, raw, 'hidden_dropout_prob', 0.1), site(PATTERN, raw, 'attention_probs_dropout_prob', 0.1), site(SUBLAYER_OUT, raw, 'hidden_dropout_prob', 0.1));
      const hidden = probability(raw, 'hidden_dropout_prob', 0.1);
      const classifier = typeof raw.classifier_dropout === 'number' ? site(POOLER, raw, 'classifier_dropout', hidden) : { names: POOLER, p: hidden, field: 'hidden_dropout_prob (classifier_dropout is null)' };
      const layers = probability(raw, 'num_hidden_layers', 12);
      if (head === 'sequence-classification') {
        // BERT drops the pooled output; RobertaClassificationHead drops h[:, 0] before its dense layer and again after the tanh.
        sites.push(classifier);
        if (config.modelType !== 'bert') sites.push({ ...classifier, names: lastHidden(layers) });
      } else if (head === 'token-classification') {
        sites.push({ ...classifier, names: lastHidden(layers) });
      }
      break;
    }
    case 'distilbert': {
      // Embeddings: LayerNorm then dropout; attention probabilities; FFN.dropout after lin2 (no dropout after out_lin).
      sites.push(site(EMBEDDING, raw, 'dropout', 0.1), site(PATTERN, raw, 'attention_dropout', 0.1), site(MLP_OUT, raw, 'dropout', 0.1));
      if (head === 'sequence-classification') sites.push(site(POOLER, raw, 'seq_classif_dropout', 0.2));
      else if (head === 'token-classification') sites.push({ ...site(POOLER, raw, 'dropout', 0.1), names: lastHidden(probability(raw, 'n_layers', 6)) });
      break;
    }
    case 't5':
    case 'mt5':
      // T5Stack.dropout on the embeddings and after the final norm; T5Attention on the probabilities;
      // each T5Layer* before its residual add; T5DenseActDense after the activation.
      for (const names of [EMBEDDING, PATTERN, SUBLAYER_OUT, ACTIVATION, FINAL_NORM]) sites.push(site(names, raw, 'dropout_rate', 0.1));
      break;
    case 'bart':
    case 'marian':
      refuseLayerDrop(raw);
      // Embeddings (+ layernorm_embedding in BART), each sublayer's output, the probabilities, after the activation.
      sites.push(site(EMBEDDING, raw, 'dropout', 0.1), site(SUBLAYER_OUT, raw, 'dropout', 0.1), site(PATTERN, raw, 'attention_dropout', 0), site(ACTIVATION, raw, 'activation_dropout', 0));
      break;
    case 'vanilla_transformer_2017':
      // torch.nn.Transformer{Encoder,Decoder}Layer: MultiheadAttention's dropout on the weights, dropout1/2/3 after
      // each sublayer, the feed-forward's dropout after the activation. The fixture's wrapper adds none.
      for (const names of [PATTERN, SUBLAYER_OUT, ACTIVATION]) sites.push(site(names, raw, 'dropout', 0.1));
      break;
    default:
      throw new UnsupportedError(`training dropout: no dropout sites are known for model_type "${config.modelType}"`);
  }
  return sites.filter((s) => s.p > 0);
}

/**
 * Hook points that apply dropout at every site, in the given scope. `active`
 * is true whenever there is a site, so the models take their unfused paths
 * (the fused kernels skip the hook points where the masks go).
 */
export class TrainingDropout implements HookPoints {
  constructor(
    readonly sites: readonly DropoutSite[],
    private readonly random: RandomSource,
    private readonly prefix = '',
  ) {}

  get active(): boolean {
    return this.sites.length > 0;
  }

  run(name: string, tensor: Tensor): Tensor {
    const full = this.prefix + name;
    const match = this.sites.find((s) => s.names.test(full));
    return match ? dropout(tensor, match.p, this.random) : tensor;
  }

  scope(prefix: string): HookPoints {
    return new TrainingDropout(this.sites, this.random, this.prefix + prefix);
  }

  /** Only the dropout sites: a training step never computes `probs` just to show it. */
  wants(name: string): boolean {
    const full = this.prefix + name;
    return this.sites.some((s) => s.names.test(full));
  }
}

/** The hooks a training forward pass takes: dropout at `sites` with masks from `random`, or none. */
export function trainingHooks(sites: readonly DropoutSite[] | undefined, random: RandomSource | undefined): HookPoints | undefined {
  if (!sites || sites.length === 0) return undefined;
  if (!random) throw new UnsupportedError('a training step with dropout needs the random source its masks come from (the Trainer passes its own)');
  return new TrainingDropout(sites, random);
}
