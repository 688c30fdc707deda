/**
 * Node entry points: the readers and writers of `src/io` bound to the local
 * file system. Browser code calls the same functions with its own FileSystem.
 */
import type { Tensor } from '../tensor/tensor.js';
import { Checkpoint } from './checkpoint.js';
import { readGenerationConfig, readModelConfig, type GenerationConfig, type ModelConfig } from './config.js';
import { nodeFileSystem } from './node-fs.js';
import { readSafetensors, SafetensorsFile, writeSafetensors, type Writable } from './safetensors.js';

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
  tensors: Readonly<Record<string, Writable>>,
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
