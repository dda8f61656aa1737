/**
 * The one YAML loader (io/yaml-file.ts) and the train recipe parsed in core: core-schema tags only,
 * one document, no reserved or non-scalar keys, bounded aliases; every refusal is one E_INPUT line
 * naming file:line, and the yaml library never writes a warning of its own.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PeftError } from '../src/errors.js';
import { parseYaml } from '../src/io/yaml-file.js';
import { parseMergeRecipe } from '../src/tasks/merge/recipe.js';
import { parseTrainRecipe } from '../src/tasks/train-recipe.js';

function refusal(f: () => unknown): PeftError {
  try {
    f();
  } catch (e) {
    if (e instanceof PeftError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}
const msg = (text: string) => refusal(() => parseYaml(text, 'r.yaml')).message;

let warnings: unknown[];
beforeEach(() => {
  warnings = [];
  vi.spyOn(process, 'emitWarning').mockImplementation((w: unknown) => void warnings.push(w));
});
afterEach(() => {
  vi.restoreAllMocks();
  expect(warnings, 'the yaml library emitted a warning').toEqual([]);
});

describe('parseYaml', () => {
  it('reads plain values, lists, mappings, core tags and bounded aliases', () => {
    expect(parseYaml('a: 1\nb: [x, 2.5, true, null]\nc: {d: e}\nf: !!str 3\ng: !!int "4"\nh: &x [1]\ni: *x\n', 'r.yaml')).toEqual({
      a: 1, b: ['x', 2.5, true, null], c: { d: 'e' }, f: '3', g: 4, h: [1], i: [1],
    });
    expect(parseYaml('', 'r.yaml')).toBeNull();
    expect(parseYaml('# only a comment\n', 'r.yaml')).toBeNull();
  });

  it('refuses tags outside the core schema by name and line', () => {
    expect(msg('a: 1\nb: !!python/object:os.system x\n')).toBe('r.yaml:2: YAML tag !!python/object:os.system is not allowed (only the core schema: plain values, lists, mappings)');
    expect(msg('a: !!python/object/apply:os.system ["ls"]\n')).toMatch(/^r\.yaml:1: YAML tag !!python\/object\/apply:os\.system is not allowed/);
    expect(msg('a:\n  - b: !custom 3\n')).toMatch(/^r\.yaml:2: YAML tag !custom is not allowed/);
    for (const tag of ['!!binary aGk=', '!!set {a: null}', '!!timestamp 2001-12-14', '!!omap [{a: 1}]', '! x', '!<tag:example.com,2000:x> 1']) {
      expect(msg(`a: ${tag}\n`), tag).toMatch(/^r\.yaml:1: YAML tag \S+ is not allowed/);
    }
  });

  it('refuses a second document, syntax errors and duplicate keys with their line', () => {
    expect(msg('a: 1\n---\nb: 2\n')).toBe('r.yaml:2: holds 2 YAML documents (separated by ---); a recipe is one document');
    expect(msg('a: 1\n...\n---\nb: 2\n---\nc: 3\n')).toMatch(/^r\.yaml:3: holds 3 YAML documents/);
    expect(msg('a: [1, 2\n')).toMatch(/^r\.yaml:\d+: not valid YAML: /);
    expect(msg('a: 1\nb: 2\na: 3\n')).toMatch(/^r\.yaml:3: not valid YAML: Map keys must be unique/);
  });

  it('refuses reserved and non-scalar keys at any depth', () => {
    expect(msg('a: 1\n__proto__: {x: 1}\n')).toBe('r.yaml:2: key "__proto__" is not allowed (a reserved name: __proto__, constructor, prototype)');
    expect(msg('a:\n  - {b: {constructor: 1}}\n')).toMatch(/^r\.yaml:2: key "constructor" is not allowed/);
    expect(msg('prototype: 1\n')).toMatch(/^r\.yaml:1: key "prototype"/);
    expect(msg('? [a, b]\n: 1\n')).toBe('r.yaml:1: a mapping key must be a plain value, not a list or mapping');
    expect(parseYaml('a: __proto__\n', 'r.yaml')).toEqual({ a: '__proto__' }); // as a value it is just text
  });

  it('refuses an alias bomb (billion laughs) quickly', () => {
    const names = 'abcdefghi';
    const lines = [`a: &a [${Array(9).fill('lol').join(', ')}]`];
    for (let i = 1; i < names.length; i++) lines.push(`${names[i]}: &${names[i]} [${Array(9).fill(`*${names[i - 1]}`).join(', ')}]`);
    const t0 = performance.now();
    expect(msg(lines.join('\n') + '\n')).toMatch(/^r\.yaml: not valid YAML: Excessive alias count/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('recipes use the loader', () => {
  it('train recipes: keys, types, spellings; reserved keys named instead of "must be a [object Object]"', () => {
    expect(parseTrainRecipe('method: lora\nsteps: 2\nseq-len: 32\noptions: {r: 4}\n', 't.yaml')).toEqual({ method: 'lora', steps: 2, seq_len: 32, options: { r: 4 } });
    expect(refusal(() => parseTrainRecipe('__proto__: 1\n', 't.yaml')).message).toBe('t.yaml:1: key "__proto__" is not allowed (a reserved name: __proto__, constructor, prototype)');
    expect(refusal(() => parseTrainRecipe('constructor: 1\n', 't.yaml')).message).not.toMatch(/object Object/);
    expect(refusal(() => parseTrainRecipe('learning_rate: 3\n', 't.yaml')).message).toMatch(/^t\.yaml: unknown key "learning_rate" \(valid: data, /);
    expect(refusal(() => parseTrainRecipe('steps: "2"\n', 't.yaml')).message).toBe('t.yaml: "steps" must be a number, got "2"');
    expect(refusal(() => parseTrainRecipe('seq_len: 2\nseq-len: 3\n', 't.yaml')).message).toMatch(/"seq-len" is given twice/);
    expect(refusal(() => parseTrainRecipe('- a\n', 't.yaml')).message).toBe('t.yaml: a train recipe is a YAML mapping of settings');
    expect(refusal(() => parseTrainRecipe('steps: 1\n---\nsteps: 2\n', 't.yaml')).message).toMatch(/^t\.yaml:2: holds 2 YAML documents/);
  });

  it('merge recipes: unknown tags and extra documents are refused, not dropped', () => {
    const models = 'models:\n  - model: a\n';
    expect(refusal(() => parseMergeRecipe(`merge_method: !custom ties\n${models}`, 'm.yml')).message).toMatch(/^m\.yml:1: YAML tag !custom is not allowed/);
    expect(refusal(() => parseMergeRecipe(`merge_method: ties\n${models}---\nmerge_method: linear\n`, 'm.yml')).message).toMatch(/^m\.yml:4: holds 2 YAML documents/);
    expect(refusal(() => parseMergeRecipe(`merge_method: ties\n${models}parameters: {__proto__: 1}\n`, 'm.yml')).message).toMatch(/^m\.yml:4: key "__proto__" is not allowed/);
  });
});
