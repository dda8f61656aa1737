/**
 * Windows for scoring a token sequence longer than the model's window: which forward passes to run
 * and which of their predictions count, so that every token of a text is scored exactly once.
 * Pure index arithmetic over `seq = [prefix, t1, ..., tn]` (seq[0] is the context of t1 and is never
 * scored); no model, no tokenizer. Two rules, both of `peft eval` on {"text"} rows:
 *
 *  - rolling (the default): EleutherAI/lm-evaluation-harness `loglikelihood_rolling`, i.e.
 *    lm_eval/utils.py get_rolling_token_windows(token_list, prefix_token, max_seq_len = seqLen,
 *    context_len = 1) followed by make_disjoint_window, fed to HFLM._loglikelihood_tokens
 *    (lm_eval/models/huggingface.py), whose input is (context + continuation)[-(max_length + 1):][:-1].
 *    The first window is seq[0..min(L, n)) scoring all its predictions; each later one scores the next
 *    up to L tokens and is seq[e - L, e) (e = the last scored token's index): one token of context, and
 *    the last window left-extended to a full L tokens of input. Forward length L.
 *  - strided (`--stride s`, 1 <= s < L): transformers' guide "Perplexity of fixed-length models"
 *    (docs/source/en/perplexity.md): windows seq[b, min(b + L, N)) for b = 0, s, 2s, ..., each scoring
 *    the tokens it holds that the previous window did not, with the window's earlier tokens as context
 *    (at least L - s of them), until a window reaches the end. A window's last token is only a target,
 *    so its forward input is seq[b, e - 1): at most L - 1 positions, as the guide's "k - 1 tokens that
 *    precede it". s = L would leave each window's first token unscored, so it is refused (eval.ts).
 *
 * Not here: running the windows (tasks/eval-text.ts), the prefix token (tasks/eval-text.ts).
 */

/** One forward pass: input seq[start, end); its last `scored` positions' predictions count (targets seq[end - scored + 1 .. end]). */
export interface Window {
  start: number;
  end: number;
  scored: number;
}

/** lm-eval-harness rolling windows over seq of length `n + 1` (n tokens after the prefix), max_seq_len `seqLen`. */
export function rollingWindows(n: number, seqLen: number): Window[] {
  checkLengths(n, seqLen);
  if (n === 0) return []; // get_rolling_token_windows yields nothing for an empty token list
  const first = Math.min(seqLen, n);
  const out: Window[] = [{ start: 0, end: first, scored: first }]; // [prefix] + tokens[:first - 1] -> tokens[:first]
  // Later windows: token_list[e - L - 1 : e - 1] predicts token_list[e - k : e]; token i is seq[i + 1].
  for (let predicted = first; predicted < n;) {
    const k = Math.min(n - predicted, seqLen);
    const e = predicted + k;
    out.push({ start: e - seqLen, end: e, scored: k });
    predicted = e;
  }
  return out;
}

/** The guide's strided windows over seq of length `n + 1`, max_length `seqLen`, stride `stride` (1 <= stride < seqLen). */
export function stridedWindows(n: number, seqLen: number, stride: number): Window[] {
  checkLengths(n, seqLen);
  if (!Number.isSafeInteger(stride) || stride < 1 || stride >= seqLen) {
    throw new RangeError(`stride must be an integer in [1, ${seqLen - 1}], got ${stride}`);
  }
  const N = n + 1;
  const out: Window[] = [];
  if (n === 0) return out;
  let prevEnd = 0; // the guide's prev_end_loc
  for (let begin = 0; ; begin += stride) {
    const end = Math.min(begin + seqLen, N);
    out.push({ start: begin, end: end - 1, scored: end - Math.max(prevEnd, 1) }); // targets seq[max(prev_end, 1) .. end - 1]
    prevEnd = end;
    if (end === N) return out;
  }
}

function checkLengths(n: number, seqLen: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`token count must be an integer >= 0, got ${n}`);
  if (!Number.isSafeInteger(seqLen) || seqLen < 2) throw new RangeError(`seq-len must be an integer >= 2, got ${seqLen}`);
}
