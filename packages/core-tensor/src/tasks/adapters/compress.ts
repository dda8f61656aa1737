/**
 * `peft compress` as a library call: read an adapter (or a fine-tuned model and its base), let a
 * registered compressor code the update, wrap it in the `.peftz` container (container.ts) and
 * write the output folder atomically:
 *
 *   OUT/compressed.peftz   the container (the only file needed to get the adapter back)
 *   OUT/README.md          what it is and how to decompress it
 *
 * A folder rather than a bare file so the output ships like any other model artifact (hub repo,
 * model card) and `--out DIR` means the same for every peft command.
 * The report's ratio is honest: fp16 bytes = 2 × parameters, against the whole container file.
 * Not here: the coding (compressors), decompression (decompress.ts).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withOutput, type Output } from '../../io/output-guard.js';
import { fsError } from '../../io/safetensors-reader.js';
import { resolveOptions, type ResolvedOptions } from '../../plugin/options.js';
import type { Registry } from '../../plugin/registry.js';
import { encodeContainer, type ContainerKind } from './container.js';
import { adapterUpdate, modelDeltaUpdate } from './update-source.js';

export const COMPRESSED_FILE = 'compressed.peftz';

export interface CompressAdapterOptions {
  /** A PEFT adapter folder; with `base`, a fine-tuned model folder. */
  adapter: string;
  /** A registered compressor, e.g. "compeft". */
  method: string;
  /** Raw option values (strings from the CLI or typed), checked against the compressor's schema. */
  options?: Record<string, unknown>;
  /** Base model folder: compress the full-model delta adapter − base instead of the adapter's tensors. */
  base?: string;
  out: string;
  force?: boolean;
}

export interface CompressReport {
  method: string;
  options: ResolvedOptions;
  kind: ContainerKind;
  tensors: number;
  params: number;
  kept: number;
  /** kept / params */
  density: number;
  /** The container file's size. */
  bytes: number;
  headerBytes: number;
  payloadBytes: number;
  /** 2 × params: the adapter stored as fp16. */
  fp16Bytes: number;
  /** fp16Bytes / bytes */
  ratio: number;
  /** 8 × bytes / params (whole file). */
  bitsPerParam: number;
  /** 8 × payloadBytes / params (the coded values alone). */
  payloadBitsPerParam: number;
  /** The entropy bound of what was kept, per parameter: H(density) + bits per kept value. */
  entropyBitsPerParam: number;
  seconds: number;
}

function readme(r: CompressReport): string {
  return [
    `# Compressed ${r.kind === 'adapter' ? 'adapter' : 'model delta'} (${r.method})`,
    '',
    `\`${COMPRESSED_FILE}\` holds ${r.params} parameters (${r.kept} kept) in ${r.bytes} bytes: ${r.ratio.toFixed(1)}x smaller than fp16,`,
    `${r.bitsPerParam.toFixed(3)} bits per parameter (entropy bound ${r.entropyBitsPerParam.toFixed(3)}).`,
    '',
    'Restore it with:',
    '',
    '```',
    `peft compress --decompress ${COMPRESSED_FILE} --out DIR${r.kind === 'model-delta' ? ' --base BASE_MODEL' : ''}`,
    '```',
    '',
  ].join('\n');
}

export async function compressAdapter(opts: CompressAdapterOptions, registry: Registry): Promise<CompressReport> {
  const spec = { command: 'compress', out: opts.out, inputs: [opts.adapter, opts.base], force: opts.force };
  return withOutput(spec, (output) => compressInto(output, opts, registry));
}

async function compressInto(output: Output, opts: CompressAdapterOptions, registry: Registry): Promise<CompressReport> {
  const t0 = performance.now();
  const compressor = registry.get('compressor', opts.method);
  const options = resolveOptions(compressor.name, compressor.options, opts.options ?? {});
  const src = opts.base ? await modelDeltaUpdate(opts.adapter, opts.base) : await adapterUpdate(opts.adapter);
  const coded = compressor.compress({ tensors: src.tensors, updates: src.updates }, options);
  const params = src.updates.reduce((s, u) => s + u.length, 0);
  const bytes = encodeContainer({
    method: compressor.name, options, kind: src.kind, config: src.config, float_keys: src.floatKeys,
    tensors: src.tensors, params, kept: coded.kept, codec: coded.codec,
  }, coded.payload);
  const r: CompressReport = {
    method: compressor.name, options, kind: src.kind, tensors: src.tensors.length, params, kept: coded.kept,
    density: coded.kept / params, bytes: bytes.length, headerBytes: bytes.length - coded.payload.length,
    payloadBytes: coded.payload.length, fp16Bytes: 2 * params, ratio: (2 * params) / bytes.length,
    bitsPerParam: (8 * bytes.length) / params, payloadBitsPerParam: (8 * coded.payload.length) / params,
    entropyBitsPerParam: coded.boundBits, seconds: 0,
  };
  await output.write(async (tmp) => {
    for (const [name, data] of [[COMPRESSED_FILE, bytes], ['README.md', readme(r)]] as const) {
      await writeFile(join(tmp, name), data).catch((e) => {
        throw fsError(e, join(tmp, name), 'writing');
      });
    }
  }, { neededBytes: () => bytes.length });
  r.seconds = (performance.now() - t0) / 1000;
  return r;
}
