/**
 * The window arithmetic of `peft eval` on text rows (data/windows.ts), against hand-worked examples:
 * lm-eval-harness's own docstring example of loglikelihood_rolling (lm_eval/api/model.py: tokens 0..9,
 * prefix BOS, max length 4) and the transformers guide's strided loop worked by hand; then, over many
 * lengths, every token is scored exactly once, no forward is longer than the window, and every scored
 * token has at least one token of context (the guide's: at least seq-len - stride).
 */
import { describe, expect, it } from 'vitest';
import { rollingWindows, stridedWindows, type Window } from '../src/data/windows.js';

/** seq = [BOS, 0, 1, ..., n - 1] as lm-eval's example writes it. */
const seqOf = (n: number): (string | number)[] => ['BOS', ...Array.from({ length: n }, (_, i) => i)];

/** Each window as lm-eval prints it: the forward input and the scored targets. */
function shown(ws: Window[], n: number): { input: (string | number)[]; pred: (string | number)[] }[] {
  const seq = seqOf(n);
  return ws.map((w) => ({ input: seq.slice(w.start, w.end), pred: seq.slice(w.end - w.scored + 1, w.end + 1) }));
}

/** For every scored target index j (1..n): how often it is scored and with how many tokens of context (j - start). */
function coverage(ws: Window[], n: number): { times: number[]; context: number[] } {
  const times = new Array<number>(n + 1).fill(0);
  const context = new Array<number>(n + 1).fill(-1);
  for (const w of ws) {
    for (let j = w.end - w.scored + 1; j <= w.end; j++) {
      times[j]++;
      context[j] = j - w.start;
    }
  }
  return { times, context };
}

describe('rolling windows (lm-eval-harness loglikelihood_rolling)', () => {
  it('are the docstring example of lm_eval/api/model.py: tokens 0..9, max length 4', () => {
    expect(shown(rollingWindows(10, 4), 10)).toEqual([
      { input: ['BOS', 0, 1, 2], pred: [0, 1, 2, 3] },
      { input: [3, 4, 5, 6], pred: [4, 5, 6, 7] },
      { input: [5, 6, 7, 8], pred: [8, 9] }, // the last window keeps a full context, scores the last two
    ]);
    expect(coverage(rollingWindows(10, 4), 10).context.slice(1)).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 3, 4]);
  });

  it('a text shorter than the window is one window; no tokens, no window', () => {
    expect(rollingWindows(3, 8)).toEqual([{ start: 0, end: 3, scored: 3 }]);
    expect(shown(rollingWindows(3, 8), 3)).toEqual([{ input: ['BOS', 0, 1], pred: [0, 1, 2] }]);
    expect(rollingWindows(4, 4)).toEqual([{ start: 0, end: 4, scored: 4 }]);
    expect(rollingWindows(5, 4)).toEqual([{ start: 0, end: 4, scored: 4 }, { start: 1, end: 5, scored: 1 }]);
    expect(rollingWindows(0, 4)).toEqual([]);
  });
});

describe('strided windows (transformers "Perplexity of fixed-length models")', () => {
  it('tokens 0..9 after BOS, max_length 4, stride 2, worked by hand', () => {
    // begin 0: seq[0,4) scores 0 1 2 (seq[0] is only context); begin 2: seq[2,6) scores 3 4 (prev_end 4);
    // begin 4: 5 6; begin 6: 7 8; begin 8: seq[8,11) scores 9 and reaches the end.
    const ws = stridedWindows(10, 4, 2);
    expect(ws).toEqual([
      { start: 0, end: 3, scored: 3 }, { start: 2, end: 5, scored: 2 }, { start: 4, end: 7, scored: 2 },
      { start: 6, end: 9, scored: 2 }, { start: 8, end: 10, scored: 1 },
    ]);
    expect(shown(ws, 10)).toEqual([
      { input: ['BOS', 0, 1], pred: [0, 1, 2] },
      { input: [1, 2, 3], pred: [3, 4] },
      { input: [3, 4, 5], pred: [5, 6] },
      { input: [5, 6, 7], pred: [7, 8] },
      { input: [7, 8], pred: [9] },
    ]);
    expect(coverage(ws, 10).context.slice(1)).toEqual([1, 2, 3, 2, 3, 2, 3, 2, 3, 2]);
  });

  it('stride seq-len - 1 keeps one token of context; a stride of seq-len or more is refused', () => {
    expect(shown(stridedWindows(6, 3, 2), 6)).toEqual([
      { input: ['BOS', 0], pred: [0, 1] }, { input: [1, 2], pred: [2, 3] }, { input: [3, 4], pred: [4, 5] },
    ]);
    expect(() => stridedWindows(6, 3, 3)).toThrow(/stride must be an integer in \[1, 2\], got 3/);
    expect(() => stridedWindows(6, 3, 0)).toThrow(/stride/);
    expect(stridedWindows(0, 3, 1)).toEqual([]);
  });
});

describe('every rule scores every token exactly once', () => {
  it.each([2, 3, 4, 7, 16])('seq-len %i, texts of 1..60 tokens, every stride', (L) => {
    for (let n = 1; n <= 60; n++) {
      const rules: [string, Window[], number, number][] = [['rolling', rollingWindows(n, L), L, 1]];
      for (let s = 1; s < L; s++) rules.push([`stride ${s}`, stridedWindows(n, L, s), L - 1, Math.min(L - s, n)]);
      for (const [name, ws, maxInput, minContext] of rules) {
        const what = `${name}, n ${n}`;
        const { times, context } = coverage(ws, n);
        expect(times.slice(1), what).toEqual(new Array<number>(n).fill(1));
        expect(times[0], what).toBe(0); // the prefix is never a target
        for (const w of ws) {
          expect(w.end - w.start, what).toBeLessThanOrEqual(maxInput);
          expect(w.scored, what).toBeGreaterThan(0);
          expect(w.end - w.scored, what).toBeGreaterThanOrEqual(w.start); // each target's predictor lies in the input
        }
        // after the first window, each scored token sees at least minContext earlier tokens
        const later = ws.slice(1).flatMap((w) => Array.from({ length: w.scored }, (_, i) => context[w.end - w.scored + 1 + i]));
        for (const c of later) expect(c, what).toBeGreaterThanOrEqual(minContext);
      }
    }
  });

  it('rolling windows use the full window after the first, as lm-eval left-extends the last', () => {
    for (const w of rollingWindows(37, 8).slice(1)) expect(w.end - w.start).toBe(8);
  });
});
