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

/** What a Hub error is about: the model, and the file and HTTP status when there is one. */
export interface HubErrorContext {
  /** The Hub id (`org/name`) or the local folder the model was asked for. */
  readonly modelId: string;
  readonly file?: string;
  /** The HTTP status; absent when no response came back (connection refused, dropped, timed out). */
  readonly status?: number;
  readonly cause?: unknown;
}

/** Talking to the Hugging Face Hub (or the cache it fills) failed. */
export class HubError extends GlassformerError {
  readonly modelId: string;
  readonly file?: string;
  readonly status?: number;

  constructor(message: string, context: HubErrorContext) {
    super(message);
    this.modelId = context.modelId;
    this.file = context.file;
    this.status = context.status;
    if (context.cause !== undefined) this.cause = context.cause;
  }
}

/** 401/403: the model is gated or private (or, without a token, may not exist). */
export class GatedModelError extends HubError {}

/** 404 on the repository or the revision. */
export class ModelNotFoundError extends HubError {}

/** A file the model needs is not in the repository, folder or snapshot. */
export class EntryNotFoundError extends HubError {}

/** Offline (HF_HUB_OFFLINE=1 or `offline: true`) and the file is not in the cache. */
export class OfflineError extends HubError {}

/** A download did not match the size or sha256 the server announced; nothing was kept. */
export class IntegrityError extends HubError {}

/** Only pickled PyTorch weights (`pytorch_model.bin`) exist; glassformer never unpickles. */
export class PickleWeightsError extends UnsupportedError {}

/** A file or directory that is not there. */
export class FileNotFoundError extends GlassformerError {
  constructor(readonly path: string) {
    super(`${path}: no such file or directory`);
  }
}
