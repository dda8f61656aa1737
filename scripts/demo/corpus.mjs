/**
 * The demo base model's pretraining text: short synthetic English documents about a small world of
 * things, colours, people and numbers, built from templates and the word lists. It teaches the model
 * the vocabulary (every word, lowercase and, in shouted sentences, uppercase), simple grammar, quoted
 * words said twice, and counting: runs of consecutive numbers ("Kim counted 417 418 419."), so the
 * base knows which number follows which.
 * It never uses the tasks' prompts ("Add one: 417 =>", "Reverse: 417 =>") and never writes a number
 * backwards: the instruction of task A and the whole rule of task B (tasks.mjs) are left for
 * fine-tuning to teach.
 * Not here: the task rows, file writing (data.mjs).
 */
import { ADJECTIVES, NAMES, NOUNS, VERBS, words } from './words.mjs';

const W = { noun: words(NOUNS), adj: words(ADJECTIVES), verb: words(VERBS), name: words(NAMES) };

const article = (w) => ('aeiou'.includes(w[0]) ? 'an' : 'a');
const cap = (s) => s[0].toUpperCase() + s.slice(1);

/** 2-7 random letters: a "code" that can only be copied, not recalled. */
const code = (r) => Array.from({ length: r.range(2, 7) }, () => String.fromCharCode(97 + r.int(26))).join('');
const phrase = (r) => (r.chance(0.5) ? r.pick(W.noun) : `${r.pick(W.adj)} ${r.pick(W.noun)}`);

/** Sentences with something to copy: a quoted phrase or a word that comes back later. */
const COPYING = [
  (r) => { const c = code(r); return `the code is "${c}". again, the code is "${c}".`; },
  (r) => { const c = code(r); return `${r.pick(W.name)} wrote "${c}" and ${r.pick(W.name)} read "${c}".`; },
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
    // A third of the runs start just before a round number, so carries are common (419 420, 199 200).
    const round = r.chance(0.5) ? 100 * r.range(1, 9) : 10 * r.range(1, 99);
    const start = r.chance(1 / 3) ? round - r.range(1, 3) : r.range(0, 995);
    return `${r.pick(W.name)} counted ${Array.from({ length: r.range(3, 6) }, (_, i) => start + i).join(' ')}.`;
  },
];

/** A sentence: half of them say something twice; one in eight is shouted (all uppercase, "!"). */
export function sentence(r) {
  const s = r.pick(r.chance(0.5) ? COPYING : PLAIN)(r);
  if (r.chance(0.125)) return s.toUpperCase().replace(/[.?]$/, '!');
  return cap(s);
}

/** A document of 3-8 sentences. */
export function documentText(r) {
  return Array.from({ length: r.range(3, 8) }, () => sentence(r)).join(' ');
}

/** Documents until they hold at least `chars` characters. */
export function corpus(r, chars) {
  const docs = [];
  for (let total = 0; total < chars; ) {
    const d = documentText(r);
    docs.push(d);
    total += d.length;
  }
  return docs;
}
