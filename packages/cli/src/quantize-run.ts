/**
 * The work behind `peft quantize`: map flags onto the quantizer's options schema, run the
 * core task with listr2 progress (one step per phase, a live `[i/N] tensor` line while
 * quantizing), and format the summary.
 */
import type { QuantizeSummary, QuantizerDef, ResolvedOptions } from '@peft/core-tensor';
import { Listr, ListrLogger, ProcessOutput } from 'listr2';
import { bytes, count, table } from './format.js';

interface QuantizeFlags {
  backend: string;
  blocksize?: number;
  'compute-dtype'?: string;
  'double-quant'?: boolean;
  force: boolean;
  out: string;
  set: string[];
  skip?: string;
  target?: string;
}

/** Dedicated flags are sugar for `--set`; one that the chosen quantizer lacks is exit 2. */
const FLAG_TO_OPTION = { blocksize: 'blocksize', 'double-quant': 'double_quant', 'compute-dtype': 'compute_dtype' } as const;

export async function quantizeOptions(q: QuantizerDef, flags: QuantizeFlags): Promise<ResolvedOptions> {
  const { parseSetPairs, resolveOptions, PeftError } = await import('@peft/core-tensor');
  const given: Record<string, unknown> = parseSetPairs(flags.set);
  for (const [flag, key] of Object.entries(FLAG_TO_OPTION)) {
    const value = flags[flag as keyof typeof FLAG_TO_OPTION];
    if (value === undefined) continue;
    if (!(key in q.options)) throw new PeftError('E_INPUT', `--${flag} does not apply to quantizer "${q.name}"`);
    given[key] = value;
  }
  return resolveOptions(q.name, q.options, given);
}

export const quantizeFlagOptions = quantizeOptions;

const list = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);

export async function runQuantize(a: {
  model: string; flags: QuantizeFlags; quantizer: QuantizerDef; options: ResolvedOptions; json: boolean;
}): Promise<QuantizeSummary & { peakRssBytes: number }> {
  const core = await import('@peft/core-tensor');
  const backend = core.getBackend(a.flags.backend as 'auto' | 'native' | 'reference');
  let summary: QuantizeSummary | undefined;
  const tasks = new Listr(
    [
      {
        title: `Quantizing ${a.model} with ${a.quantizer.name} (${backend.name}/${backend.simd})`,
        task: async (_ctx, task) => {
          summary = await core.quantizeModel({
            modelDir: a.model, outDir: a.flags.out, quantizer: a.quantizer, options: a.options, backend,
            targets: list(a.flags.target), skip: list(a.flags.skip), force: a.flags.force,
            onTensor: (e) => {
              task.output = `[${e.index + 1}/${e.total}] ${e.action} ${e.name}`;
            },
          });
          task.title = `Quantized ${summary.quantizedTensors} of ${summary.tensors} tensors into ${a.flags.out}`;
        },
      },
    ],
    {
      // Live progress on a terminal only, and on stderr so stdout stays the result; scripts
      // and pipes get the summary (or --json) alone. Failures are printed once, by the command.
      renderer: !a.json && process.stderr.isTTY ? 'default' : 'silent',
      rendererOptions: { outputBar: 1, showErrorMessage: false, logger: stderrLogger() } as never,
      exitOnError: true,
      registerSignalListeners: false,
    },
  );
  await tasks.run();
  // Peak resident memory of the whole process (ru_maxrss is in KiB on Linux).
  return { ...summary!, peakRssBytes: process.resourceUsage().maxRSS * 1024 };
}

function stderrLogger(): ListrLogger {
  return new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) });
}

export function printSummary(s: QuantizeSummary & { peakRssBytes: number }, out: string): string {
  const rows = [
    ['method', `${s.method} ${Object.entries(s.options).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`],
    ['backend', s.backend],
    ['tensors', `${s.quantizedTensors} quantized, ${s.tensors - s.quantizedTensors} kept`],
    ['parameters quantized', count(s.quantizedParams)],
    ['size', `${bytes(s.bytesBefore)} -> ${bytes(s.bytesAfter)} (${(s.bytesBefore / s.bytesAfter).toFixed(2)}x smaller)`],
    ['bits per parameter', s.bitsPerParam.toFixed(3)],
    ['dequant error', `mean |w-w'| ${s.meanAbsError.toExponential(3)}, max ${s.maxAbsError.toExponential(3)}`],
    ['time', `${s.seconds.toFixed(2)} s`],
    ['peak memory', `${bytes(s.peakRssBytes)} (largest tensor ${bytes(s.largestTensorBytes)})`],
    ['output', out],
  ];
  return table(rows);
}
