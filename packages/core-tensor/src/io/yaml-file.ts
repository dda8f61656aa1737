/**
 * The one YAML loader of peft: every recipe (merge, train) is read through it. YAML 1.2 core
 * schema only, and strict: anything the `yaml` library would warn about and carry on from is an
 * error here (E_INPUT, one line naming `file:line`), and the library never prints to stderr:
 *   - a tag outside the core schema (`!!python/object`, `!!binary`, `!custom`, ...) is refused by
 *     name, never dropped to a plain string;
 *   - one document per file (a second `---` document is refused, not hinted at);
 *   - duplicate keys, non-scalar keys and reserved keys (`__proto__`, `constructor`, `prototype`);
 *   - aliases are resolved with a bound (yaml's maxAliasCount), so an alias bomb is refused.
 * Not here: what the keys mean (tasks/merge/recipe.ts, tasks/train-recipe.ts).
 */
import { isPair, isScalar, LineCounter, parseAllDocuments, visit, type Document } from 'yaml';
import { inputError, PeftError } from '../errors.js';
import { isReservedKey, reservedKeyError } from '../reserved-keys.js';

/** The YAML 1.2 core schema's tags (https://yaml.org/spec/1.2.2/#103-core-schema): nothing else resolves. */
const CORE_TAGS: ReadonlySet<string> = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

/** Aliases resolved per document; yaml's own default (100), stated so the bound is ours. */
export const MAX_YAML_ALIASES = 100;

/** `tag:yaml.org,2002:python/object` as the user wrote it (`!!python/object`). */
function shownTag(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}

/** Throws for the first node with a non-core tag, non-scalar key or reserved key, naming its line. */
function checkNodes(doc: Document, at: (offset: number) => string): void {
  visit(doc, {
    Node(_, node) {
      if (node.tag !== undefined && !CORE_TAGS.has(node.tag)) {
        throw inputError('E_INPUT', `YAML tag ${shownTag(node.tag)} is not allowed (only the core schema: plain values, lists, mappings)`, at(node.range?.[0] ?? 0));
      }
    },
    Pair(_, pair) {
      if (!isPair(pair)) return;
      const key = pair.key;
      if (key === null || key === undefined) return;
      if (!isScalar(key)) throw inputError('E_INPUT', 'a mapping key must be a plain value, not a list or mapping', at((key as { range?: number[] }).range?.[0] ?? 0));
      if (typeof key.value === 'string' && isReservedKey(key.value)) throw reservedKeyError(key.value, at(key.range?.[0] ?? 0));
    },
  });
}

/** The single document of `text` as plain JS values; every problem is E_INPUT naming `file:line`. */
export function parseYaml(text: string, file: string): unknown {
  const lines = new LineCounter();
  const at = (offset: number) => `${file}:${lines.linePos(offset).line}`;
  // logLevel silent: the library reports through errors/warnings below, never on stderr.
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, logLevel: 'silent' });
  if (!Array.isArray(docs) || docs.length === 0) return null;
  if (docs.length > 1) {
    throw inputError('E_INPUT', `holds ${docs.length} YAML documents (separated by ---); a recipe is one document`, at(docs[1].range[0]));
  }
  const doc = docs[0];
  const fail = (p: { message: string; pos: [number, number] }) => inputError('E_INPUT', `not valid YAML: ${p.message.split('\n')[0]}`, at(p.pos[0]));
  if (doc.errors.length) throw fail(doc.errors[0]);
  checkNodes(doc, at); // before warnings: an unknown tag is named as such, not as yaml's "Unresolved tag"
  if (doc.warnings.length) throw fail(doc.warnings[0]);
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (e) {
    if (e instanceof PeftError) throw e;
    // yaml's ReferenceError for an alias bomb ("Excessive alias count ..."), or a bad alias.
    throw inputError('E_INPUT', `not valid YAML: ${String((e as Error).message).split('\n')[0]}`, file);
  }
}

/** A YAML file that must hold a mapping (`what` names it in the message, e.g. "a merge recipe"). */
export function parseYamlMapping(text: string, file: string, what: string): Record<string, unknown> {
  const doc = parseYaml(text, file);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw inputError('E_INPUT', `${what} is a YAML mapping of settings`, file);
  }
  return doc as Record<string, unknown>;
}
