/**
 * The methods through the BUILT `peft` binary, as users run them (run `make ts` first): `peft methods`
 * lists all five with their options; `peft train` trains prompt tuning (TEXT init) and prefix tuning and
 * writes PEFT folders; `peft eval` / `peft generate --adapter` apply them (the peft_type picks the
 * method); `peft inspect` shows N, the init and the shapes; a missing required option is exit 2 with one
 * line on stderr and nothing written.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelDir, tempDir } from './helpers.js';

const BIN = resolve(import.meta.dirname, '../../cli/bin/run.js');
const work = tempDir('prompt-cli');
const data = join(work, 'train.jsonl');
const evalData = join(work, 'eval.jsonl');

function peft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('node', [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', XDG_DATA_HOME: join(work, 'oclif') }, timeout: 120_000 },
      (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

beforeAll(async () => {
  const rows = Array.from({ length: 24 }, (_, i) => ({ prompt: `Add one: ${100 + i} =>`, completion: ` ${101 + i}` }));
  await fsp.writeFile(data, rows.map((r) => JSON.stringify(r)).join('\n'));
  await fsp.writeFile(evalData, rows.slice(0, 4).map((r) => JSON.stringify(r)).join('\n'));
});
afterAll(() => fsp.rm(work, { recursive: true, force: true }));

const train = (out: string, method: string, sets: string[]) => peft(['train', modelDir('llama'), '--data', data, '--out', out, '--method', method,
  ...sets.flatMap((s) => ['--set', s]), '--steps', '3', '--batch', '4', '--seq-len', '32', '--lr', '1e-2', '--json']);

describe('peft with plugin-prompt', () => {
  it('methods lists the five methods with their options', async () => {
    const r = await peft(['methods', '--kind', 'method', '--json']);
    expect(r.code).toBe(0);
    const methods = JSON.parse(r.stdout).method as { name: string; options: Record<string, unknown> }[];
    const byName = Object.fromEntries(methods.map((m) => [m.name, Object.keys(m.options)]));
    expect(byName['prompt-tuning']).toEqual(['num_virtual_tokens', 'prompt_tuning_init', 'prompt_tuning_init_text']);
    expect(byName['p-tuning']).toEqual(['num_virtual_tokens', 'encoder_reparameterization_type', 'encoder_hidden_size', 'encoder_num_layers', 'encoder_dropout']);
    expect(byName['prefix-tuning']).toEqual(['num_virtual_tokens', 'prefix_projection', 'encoder_hidden_size', 'init_weights']);
    expect(byName.dept).toEqual(['num_virtual_tokens', 'prompt_tuning_init', 'prompt_tuning_init_text', 'r', 'lora_alpha', 'max_length', 'prompt_lr', 'lora_lr']);
    expect(byName['ntk-prefix']).toEqual(['init_std']);
  });

  it('train prompt tuning (TEXT) -> a PEFT folder that eval, generate and inspect apply and describe', async () => {
    const out = join(work, 'pt');
    const t = await train(out, 'prompt-tuning', ['num_virtual_tokens=6', 'prompt_tuning_init=TEXT', 'prompt_tuning_init_text=Add one:']);
    expect(t.code, t.stderr).toBe(0);
    expect(JSON.parse(t.stdout).trainableParams).toBe(6 * 32);
    const adapter = join(out, 'adapter');
    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 6, prompt_tuning_init: 'TEXT', inference_mode: true, token_dim: 32 });
    const [plain, tuned] = [await peft(['eval', modelDir('llama'), '--data', evalData, '--json']), await peft(['eval', modelDir('llama'), '--data', evalData, '--adapter', adapter, '--json'])];
    expect(tuned.code, tuned.stderr).toBe(0);
    expect(JSON.parse(tuned.stdout).loss).not.toBeCloseTo(JSON.parse(plain.stdout).loss, 4);
    const g = await peft(['generate', modelDir('llama'), '--adapter', adapter, '--prompt', 'Add one: 117 =>', '-n', '4', '--json']);
    expect(g.code, g.stderr).toBe(0);
    expect(JSON.parse(g.stdout).tokenIds.length).toBeGreaterThan(0);
    const i = await peft(['inspect', adapter]);
    expect(i.code).toBe(0);
    expect(i.stdout).toMatch(/virtual_tokens=6 init=TEXT prompt_embeddings=\[6, 32\]/);
  });

  it('train prefix tuning -> inspect shows the flat prefix; eval applies it', async () => {
    const out = join(work, 'px');
    expect((await train(out, 'prefix-tuning', ['num_virtual_tokens=3'])).code).toBe(0);
    const i = await peft(['inspect', join(out, 'adapter'), '--json']);
    expect(JSON.parse(i.stdout).prompt).toEqual({ virtualTokens: 3, init: 'RANDOM', shapes: { prompt_embeddings: [3, 2 * 2 * 32] } });
    const e = await peft(['eval', modelDir('llama'), '--data', evalData, '--adapter', join(out, 'adapter'), '--json']);
    expect(e.code, e.stderr).toBe(0);
  });

  it('a missing num_virtual_tokens is exit 2, one line on stderr, nothing written', async () => {
    const out = join(work, 'missing');
    const r = await peft(['train', modelDir('llama'), '--data', data, '--out', out, '--method', 'p-tuning', '--steps', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/p-tuning: num_virtual_tokens is required/);
    expect(existsSync(out)).toBe(false);
  });
});
