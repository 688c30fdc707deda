/**
 * The summarization job: text in, a shorter text out, as transformers'
 * `pipeline("summarization")`. T5 is told the task by the prefix "summarize: "
 * (config.json task_specific_params.summarization when present, which also sets
 * the decoding defaults, e.g. 4 beams and no repeated trigrams); BART-CNN-style
 * models take the text as it is.
 */
import { generateText, taskSetup, type Seq2SeqPipeline, type Seq2SeqTextOptions, type TaskSetup } from './translate.js';

export type SummarizeOptions = Seq2SeqTextOptions;

export function summarizationSetup(pipeline: Seq2SeqPipeline): TaskSetup {
  const t5 = pipeline.modelType === 't5' || pipeline.modelType === 'mt5';
  return taskSetup(pipeline, 'summarization', t5 ? 'summarize: ' : '');
}

/** Summarize one text (→ string) or several (→ strings, same order). */
export async function summarize(pipeline: Seq2SeqPipeline, text: string, options?: SummarizeOptions): Promise<string>;
export async function summarize(pipeline: Seq2SeqPipeline, texts: readonly string[], options?: SummarizeOptions): Promise<string[]>;
export async function summarize(pipeline: Seq2SeqPipeline, input: string | readonly string[], options: SummarizeOptions = {}): Promise<string | string[]> {
  const outputs = await generateText(pipeline, typeof input === 'string' ? [input] : input, summarizationSetup(pipeline), options);
  return typeof input === 'string' ? outputs[0].text : outputs.map((o) => o.text);
}
