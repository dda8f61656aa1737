/**
 * The demo's two fine-tuning tasks as prompt/completion rows, with held-out test rows whose numbers
 * never occur in the training rows, so a high test score means the rule was learned, not recalled:
 *   A  last digit in words   {"prompt": "Last digit in words: 4817 =>", "completion": " seven"}
 *   B  even or odd           {"prompt": "Even or odd: 4817 =>", "completion": " odd"}
 * Numbers are 0-9999; the tokenizer is byte-level, so the rule reads the one digit token before " =>"
 * and answer words are spelled out token by token. The base model has seen numbers and words in
 * pretraining (corpus.mjs), never these prompts, and never a digit paired with its word.
 * Chosen (over uppercasing or adding one, tried first) because a model this small learns to read one
 * position reliably from an adapter in a minute, while copying whole strings needs far longer training.
 * Not here: file writing (data.mjs).
 */

/** Share of the numbers kept for the test split. */
export const TEST_SHARE = 0.2;
const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

export const lastDigitRow = (n) => ({ prompt: `Last digit in words: ${n} =>`, completion: ` ${DIGIT_WORDS[n % 10]}` });
export const evenOddRow = (n) => ({ prompt: `Even or odd: ${n} =>`, completion: n % 2 === 0 ? ' even' : ' odd' });

/** `nTrain` training and `nTest` held-out rows of `row(n)`, from disjoint sets of the numbers 0-9999. */
function numberTask(r, row, nTrain, nTest) {
  const nums = r.shuffled(Array.from({ length: 10000 }, (_, i) => i));
  const cut = Math.round(nums.length * TEST_SHARE);
  if (nTest > cut || nTrain > nums.length - cut) throw new Error(`asked for ${nTrain} + ${nTest} rows of 10000 numbers split ${TEST_SHARE}`);
  return { train: nums.slice(cut, cut + nTrain).map(row), test: nums.slice(0, nTest).map(row) };
}

export const lastDigitTask = (r, nTrain, nTest) => numberTask(r, lastDigitRow, nTrain, nTest);
export const evenOddTask = (r, nTrain, nTest) => numberTask(r, evenOddRow, nTrain, nTest);
