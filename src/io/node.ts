/**
 * Node entry points: the readers and writers of `src/io` bound to the local
 * file system. Browser code calls the same functions with its own FileSystem.
 */
import type { Tensor } from '../tensor/tensor.js';
import { Checkpoint } from './checkpoint.js';
import { readGenerationConfig, readModelConfig, type GenerationConfig, type ModelConfig } from './config.js';
import { readLlama2cCheckpoint, readLlama2cTokenizer, type Llama2cCheckpoint, type Llama2cTokenizer } from './llama2c.js';
import { openModelFolder, type ModelFolder, type OpenModelFolderOptions } from './model-folder.js';
import { nodeFileSystem } from './node-fs.js';
import { readSafetensors, SafetensorsFile, writeSafetensors, type WritableSet } from './safetensors.js';

/** Read the header of a safetensors file; tensors are read on demand with `get`. */
export function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(nodeFileSystem.source(path));
}

/** Every tensor of a safetensors file, by name. */
export function loadSafetensors(path: string): Promise<Map<string, Tensor>> {
  return readSafetensors(nodeFileSystem, path);
}

/** Write tensors to a safetensors file atomically, laid out as the Python library does. */
export function saveSafetensors(
  path: string,
  tensors: WritableSet,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  return writeSafetensors(nodeFileSystem, path, tensors, metadata);
}

/** A `.safetensors` file or a sharded set through its `model.safetensors.index.json`. */
export function openCheckpoint(path: string): Promise<Checkpoint> {
  return Checkpoint.open(nodeFileSystem, path);
}

export function loadModelConfig(path: string): Promise<ModelConfig> {
  return readModelConfig(nodeFileSystem, path);
}

export function loadGenerationConfig(path: string): Promise<GenerationConfig> {
  return readGenerationConfig(nodeFileSystem, path);
}

/** A model folder: configs, tokenizer files and (headers of) the weights. */
export function loadModelFolder(dir: string, options?: OpenModelFolderOptions): Promise<ModelFolder> {
  return openModelFolder(nodeFileSystem, dir, options);
}

/** A llama2.c float32 checkpoint as Hugging Face Llama tensors and config. */
export function loadLlama2cCheckpoint(path: string): Promise<Llama2cCheckpoint> {
  return readLlama2cCheckpoint(nodeFileSystem.source(path));
}

/** A llama2.c tokenizer.bin; pass the model's vocab size to check the count. */
export function loadLlama2cTokenizer(path: string, vocabSize?: number): Promise<Llama2cTokenizer> {
  return readLlama2cTokenizer(nodeFileSystem, path, vocabSize);
}
