/**
 * The demo's two fine-tuning tasks as prompt/completion rows over three-digit numbers, with held-out
 * test rows whose numbers never occur in the training rows, so a high test score means the rule was
 * learned, not recalled:
 *   A  add one   {"prompt": "Add one: 417 =>", "completion": " 418"}   100-998 (carries: 419 -> 420, 499 -> 500)
 *   B  reverse   {"prompt": "Reverse: 417 =>", "completion": " 714"}   100-999 (reversed as text: 410 -> 014)
 * The base model counted through these numbers in pretraining (corpus.mjs) but never saw either
 * prompt, and never a number written backwards: A teaches an instruction for something the base can
 * do in another form, B a rule it has never seen.
 * Three digits always: with the tokenizer's one token per byte, each answer digit sits a fixed
 * distance from the digits it depends on, a pattern an adapter on a 1M-parameter model learns in
 * seconds. (Rules over strings of varying length, such as uppercasing words, need the base to copy
 * from any distance, which it does not learn within the pretraining budget.)
 * Not here: file writing (data.mjs).
 */

/** Share of the numbers kept for the test split. */
export const TEST_SHARE = 0.2;

export const addOneRow = (n) => ({ prompt: `Add one: ${n} =>`, completion: ` ${n + 1}` });
export const reverseRow = (n) => ({ prompt: `Reverse: ${n} =>`, completion: ` ${[...String(n)].reverse().join('')}` });

/** The numbers lo..hi split by a seeded shuffle: the first TEST_SHARE for test, the rest for training. */
function numberTask(r, row, lo, hi) {
  const nums = r.shuffled(Array.from({ length: hi - lo + 1 }, (_, i) => lo + i));
  const cut = Math.round(nums.length * TEST_SHARE);
  return { train: nums.slice(cut).map(row), test: nums.slice(0, cut).map(row) };
}

/** Task A: 719 training and 180 test rows (100-998, so every answer has three digits). */
export const addOneTask = (r) => numberTask(r, addOneRow, 100, 998);
/** Task B: 720 training and 180 test rows. */
export const reverseTask = (r) => numberTask(r, reverseRow, 100, 999);
