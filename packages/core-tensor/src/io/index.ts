/**
 * io/: safetensors files (lazy reading, streaming and sharded writing), Hugging Face model
 * folders and config.json, PEFT adapter folders, atomic output folders (with their locks and
 * markers). The public surface of this layer.
 * Not here: tokenizer.json parsing (tokenizer/), quantized layouts (quant/).
 */
export { MAX_HEADER_BYTES, parseHeader, headerLength, buildHeader, safetensorsOrder } from './safetensors-header.js';
export type { TensorInfo, ParsedHeader, HeaderEntry } from './safetensors-header.js';
export { SafetensorsFile, type OpenOptions } from './safetensors-reader.js';
export { SafetensorsWriter, serializeSafetensors, writeSafetensors } from './safetensors-writer.js';
export type { TensorInput, WriterOptions, WrittenFile } from './safetensors-writer.js';
export { ShardedWriter, DEFAULT_MAX_SHARD_BYTES, shardFileName } from './sharded-writer.js';
export type { ShardedWriterOptions, ShardedResult } from './sharded-writer.js';
export { ModelFolder, openModelFolder, isModelFolder, isAuxFile, SINGLE_WEIGHTS, WEIGHTS_INDEX } from './model-folder.js';
export type { ModelTensorInfo } from './model-folder.js';
export { readHfConfig, llamaDims, llamaShapes, checkLlamaShapes, checkConfigTensors, LLAMA_FAMILY } from './hf-config.js';
export type { HfConfig, LlamaDims, LlamaModelType, ShapeSource } from './hf-config.js';
export { AtomicFolder, withAtomicFolder, removeAside, removeDeadTemps, isPeftTemp, copyAuxFiles, type AtomicOptions } from './atomic.js';
export { openOutput, guardOutput, withOutput, withAtomicOutput, checkOutsideInputs, Output, type OutputSpec, type WriteOptions } from './output-guard.js';
export { OUTPUT_MARKER, readOutputMarker, writeOutputMarker, checkReplaceable, peftVersion, type OutputMarker } from './output-marker.js';
export { OutputLock, lockPathOf, LOCK_SUFFIX, type LockInfo } from './output-lock.js';
export { floatKeysOf, HF_FLOAT_KEYS, pyJsonDumps } from './py-json.js';
export { VarBuilder, DEFAULT_INIT, type FolderOptions, type Init, type WeightSource } from './var-builder.js';
export { readJsonObject, parseJsonObject } from './json-file.js';
export { openRegularFile, readRegularFile, readTextFile, isLfsPointer, LFS_POINTER_PREFIX } from './regular-file.js';
export { parseYaml, parseYamlMapping, MAX_YAML_ALIASES } from './yaml-file.js';
export * from './peft-adapter.js';
export * from './peft-keys.js';
