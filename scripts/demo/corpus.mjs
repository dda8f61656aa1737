/**
 * The demo base model's pretraining text: short synthetic English documents about a small world of
 * things, colours, people and numbers, built from templates and the word lists. It teaches the
 * model the vocabulary (every word, lowercase and, in shouted sentences, uppercase), simple grammar,
 * copying of quoted words (so attention learns to look back) and counting (so it knows which number
 * follows which).
 * It never names a digit in words next to the digit, never says whether a number is even, and never
 * uses the tasks' "=>" prompts: the tasks' rules (tasks.mjs) are left for fine-tuning to teach.
 * Not here: the task rows, file writing (data.mjs).
 */
import { ADJECTIVES, NAMES, NOUNS, VERBS, words } from './words.mjs';

const W = { noun: words(NOUNS), adj: words(ADJECTIVES), verb: words(VERBS), name: words(NAMES) };

const article = (w) => ('aeiou'.includes(w[0]) ? 'an' : 'a');
const cap = (s) => s[0].toUpperCase() + s.slice(1);

const letters = (r) => Array.from({ length: r.range(2, 8) }, () => String.fromCharCode(97 + r.int(26))).join('');
/** 1-3 "words" of random letters. */
const code = (r) => Array.from({ length: r.range(1, 3) }, () => letters(r)).join(' ');
const phrase = (r) => (r.chance(0.5) ? r.pick(W.noun) : `${r.pick(W.adj)} ${r.pick(W.noun)}`);

/** Sentences with something to copy: a quoted phrase or a word that comes back later. */
const COPYING = [
  // Random letters cannot be recalled, only copied: the clearest signal for attention to look back.
  (r) => { const c = code(r); return `the code is "${c}". again, the code is "${c}".`; },
  (r) => { const c = code(r); return `${r.pick(W.name)} wrote "${c}" and ${r.pick(W.name)} read "${c}".`; },
  (r) => { const c = code(r); return `the code "${c}" is the same as "${c}".`; },
  (r) => { const q = phrase(r); return `${r.pick(W.name)} said "${q}" and ${r.pick(W.name)} said "${q}" too.`; },
  (r) => { const q = phrase(r); return `the sign says "${q}". yes, it says "${q}".`; },
  (r) => { const q = `${phrase(r)} ${r.pick(W.verb)}`; return `${r.pick(W.name)} wrote "${q}", then wrote "${q}" again.`; },
  (r) => { const w = r.pick(W.noun); return `the word is ${w}. again, the word is ${w}.`; },
];

/** Sentences about the world, and counting (runs of consecutive numbers). */
const PLAIN = [
  (r) => `the ${r.pick(W.adj)} ${r.pick(W.noun)} is ${r.pick(W.adj)}.`,
  (r) => { const n = r.pick(W.noun); return `${article(n)} ${n} is near the ${r.pick(W.noun)}.`; },
  (r) => `${r.pick(W.name)} has ${r.range(2, 99)} ${r.pick(W.adj)} ${r.pick(W.noun)}s.`,
  (r) => `${r.pick(W.name)} can ${r.pick(W.verb)} with the ${r.pick(W.noun)}.`,
  (r) => `the ${r.pick(W.noun)} and the ${r.pick(W.noun)} ${r.pick(W.verb)} all day.`,
  (r) => { const [a, b, c] = [r.pick(W.noun), r.pick(W.noun), r.pick(W.noun)]; return `we saw ${article(a)} ${a}, ${article(b)} ${b} and ${article(c)} ${c}.`; },
  (r) => `${r.pick(W.name)} likes the ${r.pick(W.adj)} ${r.pick(W.noun)} but not the ${r.pick(W.adj)} one.`,
  (r) => { const n = r.pick(W.noun); return `is the ${n} ${r.pick(W.adj)}? yes, the ${n} is very ${r.pick(W.adj)}.`; },
  (r) => `there are ${r.range(0, 999)} ${r.pick(W.noun)}s in the ${r.pick(W.noun)}.`,
  (r) => {
    const start = r.range(0, 995), len = r.range(3, 6);
    return `${r.pick(W.name)} counted ${Array.from({ length: len }, (_, i) => start + i).join(' ')}.`;
  },
];

/**
 * A sentence: copying ones are half (attention must learn to look back for the tasks to be learnable);
 * about one in eight is shouted (all uppercase, "!"), so the model knows uppercase words.
 */
export function sentence(r) {
  const s = r.pick(r.chance(0.5) ? COPYING : PLAIN)(r);
  if (r.chance(0.125)) return s.toUpperCase().replace(/[.?]$/, '!');
  return cap(s);
}

const CODES = COPYING.slice(0, 3);

/**
 * A document of 3-8 sentences; three in ten are copy drills (only random-letter codes, each said
 * twice): without that much copying, 1M-parameter models do not learn to look back within minutes.
 */
export function documentText(r) {
  if (r.chance(0.3)) return drillText(r);
  return Array.from({ length: r.range(3, 8) }, () => sentence(r)).join(' ');
}

/** A copy drill: 3-8 sentences that each say a random-letter code twice. */
export function drillText(r) {
  return Array.from({ length: r.range(3, 8) }, () => cap(r.pick(CODES)(r))).join(' ');
}

/** Documents until they hold at least `chars` characters. */
export function corpus(r, chars, make = documentText) {
  const docs = [];
  for (let total = 0; total < chars; ) {
    const d = make(r);
    docs.push(d);
    total += d.length;
  }
  return docs;
}
