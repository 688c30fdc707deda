/**
 * Typed errors. Every message says where the problem is (file, tensor, field or
 * flag), what was expected and what was found, so a user can act on it.
 */
export class GlassformerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor had a shape, dtype or size an operation cannot take. */
export class ShapeError extends GlassformerError {}

/** A file on disk is damaged or not in the format it claims to be. */
export class FormatError extends GlassformerError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** A config field is missing or has a value the model cannot use. */
export class ConfigError extends GlassformerError {}

/** The checkpoint lacks a tensor the model needs, or has it in the wrong shape. */
export class WeightError extends GlassformerError {}

/** A caller asked for something glassformer does not do; it refuses rather than guess. */
export class UnsupportedError extends GlassformerError {}

/** A file or directory that is not there. */
export class FileNotFoundError extends GlassformerError {
  constructor(readonly path: string) {
    super(`${path}: no such file or directory`);
  }
}
