/**
 * Hostile inputs other than containers (issue 9, items 5 and 10), run on the built binary: FIFOs,
 * devices and folders where a file is expected are refused instead of hanging; Git LFS pointers are
 * named; a config.json whose layers or shapes the tensors do not have is exit 2 in every command that
 * reads a model, before any work and in bounded time and memory; recipes with unknown YAML tags,
 * several documents, alias bombs or reserved keys (`__proto__`, ...) are exit 2 with one line, and no
 * library warning reaches stderr.
 */
import { generateTinyLlama } from '@peft/core-tensor';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { listing, tempDir } from './helpers.js';
import { peftMeasured } from './measure.js';

const MAX_RSS_MIB = 250;
const MAX_SECONDS = 15;

let work: string;
let good: string;
let data: string;
let n = 0;

beforeAll(async () => {
  work = tempDir('peft-hostile-');
  good = join(work, 'good');
  await generateTinyLlama(good, { preset: 'tiny', seed: 3 }); // 2 layers
  data = join(work, 'rows.jsonl');
  writeFileSync(data, Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `n ${i} =>`, completion: ` ${i + 1}` })).join('\n') + '\n');
});

/** A copy of the good model with `edit` applied to the folder. */
function variant(edit: (dir: string) => void): string {
  const dir = join(work, `m${n++}`);
  cpSync(good, dir, { recursive: true });
  edit(dir);
  return dir;
}

function editConfig(dir: string, change: Record<string, unknown>): void {
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...change }));
}

const fifo = (path: string) => execFileSync('mkfifo', [path]);

/** Exit 2 with one line matching `pattern`, no library warning, nothing new in the work folder, bounded cost. */
async function refused(args: string[], pattern: RegExp): Promise<void> {
  const before = listing(work);
  const r = await peftMeasured(args, { timeoutMs: 30_000 });
  expect(r.timedOut, `timed out: peft ${args.join(' ')}`).toBe(false);
  expect(r.exitCode, r.stderr).toBe(2);
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/YAMLWarning|parseAllDocuments|Warning:/);
  expect(listing(work)).toEqual(before);
  expect(r.peakRssMiB, 'peak RSS (MiB)').toBeLessThan(MAX_RSS_MIB);
  expect(r.seconds, 'seconds').toBeLessThan(MAX_SECONDS);
}

const out = () => join(work, 'out');

/** Every command that reads a model folder, as it would be run on `dir`. */
const readers = (dir: string): [string, string[]][] => [
  ['inspect', ['inspect', dir]],
  ['quantize', ['quantize', dir, '--out', out()]],
  ['train', ['train', dir, '--data', data, '--out', out(), '--steps', '1']],
  ['eval', ['eval', dir, '--data', data]],
  ['generate', ['generate', dir, '--prompt', 'n 1 =>', '-n', '2']],
  ['merge', ['merge', '--method', 'linear', '--model', dir, '--model', good, '--weight', '1', '--weight', '1', '--out', out()]],
  ['compress --base', ['compress', dir, '--base', good, '--out', out()]],
];

describe('only regular files are read', () => {
  it('a FIFO as the input of inspect and decompress', async () => {
    const p = join(work, 'pipe.safetensors');
    fifo(p);
    await refused(['inspect', p], /pipe\.safetensors: is a FIFO \(named pipe\), expected a regular file/);
    await refused(['compress', '--decompress', p, '--out', out()], /is a FIFO/);
    rmSync(p);
  });

  it('a FIFO as model.safetensors or config.json, in every command that reads a model', async () => {
    const weights = variant((d) => { rmSync(join(d, 'model.safetensors')); fifo(join(d, 'model.safetensors')); });
    for (const [, args] of readers(weights)) await refused(args, /model\.safetensors: is a FIFO/);
    const config = variant((d) => { rmSync(join(d, 'config.json')); fifo(join(d, 'config.json')); });
    // (train/eval/generate also read config.json through the tokenizer loader, which is outside this check)
    for (const [, args] of readers(config).filter(([c]) => ['inspect', 'quantize', 'merge'].includes(c))) await refused(args, /config\.json: is a FIFO/);
    rmSync(weights, { recursive: true });
    rmSync(config, { recursive: true });
  });

  it('a FIFO as a train or merge recipe; a device as a container; a folder as weights', async () => {
    const recipe = join(work, 'recipe.yaml');
    fifo(recipe);
    await refused(['train', good, '--recipe', recipe, '--data', data, '--out', out()], /recipe\.yaml: is a FIFO/);
    rmSync(recipe);
    const merge = join(work, 'merge.yml');
    fifo(merge);
    await refused(['merge', merge, '--out', out()], /merge\.yml: is a FIFO/);
    rmSync(merge);
    await refused(['compress', '--decompress', '/dev/zero', '--out', out()], /\/dev\/zero: is a device, expected a regular file/);
    const dir = variant((d) => { rmSync(join(d, 'model.safetensors')); mkdirSync(join(d, 'model.safetensors')); });
    await refused(['inspect', dir], /model\.safetensors: is a folder, expected a regular file/);
    rmSync(dir, { recursive: true });
  });
});

describe('Git LFS pointer files', () => {
  const pointer = 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1780000\n';

  it('are named, not read as a header length of 2336927755350992246', async () => {
    const dir = variant((d) => writeFileSync(join(d, 'model.safetensors'), pointer));
    for (const args of [['inspect', dir], ['quantize', dir, '--out', out()], ['inspect', join(dir, 'model.safetensors')]]) {
      await refused(args, /model\.safetensors: Git LFS pointer, not the file: run git lfs pull$/m);
    }
    const peftz = join(work, 'lfs.peftz');
    writeFileSync(peftz, pointer);
    await refused(['compress', '--decompress', peftz, '--out', out()], /lfs\.peftz: Git LFS pointer, not the file: run git lfs pull/);
    rmSync(peftz);
  });
});

describe('config.json is checked against the tensors before any work', () => {
  it('num_hidden_layers: 10000000 for a 2-layer model names the first missing key in every command', async () => {
    const dir = variant((d) => editConfig(d, { num_hidden_layers: 10_000_000 }));
    for (const [, args] of readers(dir)) {
      await refused(args, /config\.json: tensor model\.layers\.2\.input_layernorm\.weight is missing \(num_hidden_layers is 10000000; the weights hold layers 0\.\.1\)/);
    }
  });

  it('num_hidden_layers: 1000000 is never written out by quantize or merge', async () => {
    const dir = variant((d) => editConfig(d, { num_hidden_layers: 1_000_000 }));
    await refused(['quantize', dir, '--out', out()], /model\.layers\.2\.input_layernorm\.weight is missing/);
    await refused(readers(dir)[5][1], /model\.layers\.2\.input_layernorm\.weight is missing/);
  });

  it('hidden, vocabulary, MLP and head sizes the tensors do not have', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ hidden_size: 100_000_000 }, /tensor model\.embed_tokens\.weight has shape \[320, 64\] but config\.json implies \[320, 100000000\]/],
      [{ vocab_size: 1_000_000_000 }, /model\.embed_tokens\.weight has shape \[320, 64\] but config\.json implies \[1000000000, 64\]/],
      [{ intermediate_size: 1_000_000_000 }, /model\.layers\.0\.mlp\.gate_proj\.weight has shape \[128, 64\]/],
      [{ num_attention_heads: 1_000_000, num_key_value_heads: 1_000_000, head_dim: 16 }, /model\.layers\.0\.self_attn\.q_proj\.weight has shape/],
    ];
    for (const [change, pattern] of cases) {
      const dir = variant((d) => editConfig(d, change));
      for (const [, args] of readers(dir).filter(([c]) => c === 'quantize' || c === 'merge' || c === 'generate')) await refused(args, pattern);
    }
  });

  it('fewer layers than the weights hold', async () => {
    const dir = variant((d) => editConfig(d, { num_hidden_layers: 1 }));
    await refused(['merge', '--method', 'linear', '--model', dir, '--model', dir, '--weight', '1', '--weight', '1', '--out', out()],
      /config\.json: tensor model\.layers\.1\.\S+ is beyond num_hidden_layers \(1\)/);
  });
});

describe('recipes and settings files', () => {
  const write = (name: string, text: string) => {
    const p = join(work, name);
    writeFileSync(p, text);
    return p;
  };
  const train = (recipe: string) => ['train', good, '--recipe', recipe, '--data', data, '--out', out()];

  it('unknown YAML tags are exit 2 naming the tag and file:line, not a dropped-tag warning', async () => {
    await refused(train(write('tag.yaml', 'steps: 1\nmethod: !!python/object:os.system lora\n')),
      /tag\.yaml:2: YAML tag !!python\/object:os\.system is not allowed/);
    await refused(train(write('custom.yaml', 'options:\n  r: !custom 4\n')), /custom\.yaml:2: YAML tag !custom is not allowed/);
    await refused(['merge', write('tag.yml', `merge_method: !!binary bGluZWFy\nmodels:\n  - model: ${good}\n`), '--out', out()],
      /tag\.yml:1: YAML tag !!binary is not allowed/);
    for (const f of ['tag.yaml', 'custom.yaml', 'tag.yml']) rmSync(join(work, f));
  });

  it('several documents, and alias bombs, are exit 2', async () => {
    await refused(train(write('two.yaml', 'steps: 1\n---\nsteps: 2\n')), /two\.yaml:2: holds 2 YAML documents/);
    await refused(['merge', write('two.yml', `merge_method: linear\nmodels: [{model: ${good}}]\n---\n`), '--out', out()], /two\.yml:3: holds 2 YAML documents/);
    const lol = ['a: &a [x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(', ')}]`)];
    await refused(train(write('lol.yaml', `${lol.join('\n')}\nsteps: 1\n`)), /lol\.yaml: not valid YAML: Excessive alias count/);
    for (const f of ['two.yaml', 'two.yml', 'lol.yaml']) rmSync(join(work, f));
  });

  it('__proto__, constructor and prototype keys are refused by name everywhere', async () => {
    const reserved = (k: string) => new RegExp(`key "${k}" is not allowed \\(a reserved name`);
    await refused(train(write('proto.yaml', '__proto__: 1\n')), /proto\.yaml:1: key "__proto__" is not allowed/);
    await refused(train(write('ctor.yaml', 'steps: 1\noptions:\n  constructor: 1\n')), /ctor\.yaml:3: key "constructor" is not allowed/);
    await refused(['merge', write('proto.yml', `merge_method: linear\nmodels: [{model: ${good}}]\nparameters: {prototype: 1}\n`), '--out', out()], reserved('prototype'));
    await refused(['train', good, '--data', data, '--out', out(), '--set', '__proto__=1'], /--set: key "__proto__" is not allowed/);
    const cfg = variant((d) => writeFileSync(join(d, 'config.json'), readFileSync(join(d, 'config.json'), 'utf8').replace('{', '{"__proto__": {"x": 1},')));
    await refused(['inspect', cfg], /config\.json: key "__proto__" is not allowed/);
    const adapter = join(work, 'adapter');
    mkdirSync(adapter);
    writeFileSync(join(adapter, 'adapter_config.json'), '{"peft_type": "LORA", "r": 4, "lora_alpha": {"constructor": 1}}');
    await refused(['inspect', adapter], /adapter_config\.json: key "constructor" is not allowed/);
    for (const f of ['proto.yaml', 'ctor.yaml', 'proto.yml']) rmSync(join(work, f));
    rmSync(adapter, { recursive: true });
  });
});
