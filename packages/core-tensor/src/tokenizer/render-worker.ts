/**
 * The body of the chat-template render worker (render-pool.ts starts it). It runs in its own
 * worker_thread, whose heap the pool caps with resourceLimits, and renders jobs with
 * @huggingface/jinja under limits the library itself lacks: interpreter steps (every node
 * evaluation and block, so loop iterations count), characters of any string and items of any list
 * the template builds, `range()` sized before it allocates, and wall time. A runaway template ends
 * with a limit error instead of taking the process down.
 *
 * `renderWorkerMain` is started from its source text (Worker `eval`), so it must stay
 * self-contained: no imports, no outer variables; modules come through the `load` argument. It
 * patches the library's Interpreter prototype, which is safe only because this realm does nothing else.
 * Not here: choosing the template, checking messages, tokenizing (chat-template.ts, data/chat.ts).
 */

/** The limits of one render (documented in README "Safety"). */
export interface RenderLimits {
  /** interpreter steps (node evaluations + blocks; a loop's items and a range()'s length count too) */
  steps: number;
  /** characters of the output and of any string the template builds */
  chars: number;
  /** items of any list (range() included) the template builds */
  items: number;
  /** wall time of one job (a conversation's renders share it) */
  seconds: number;
  /** characters rendered in all prefix renders of one conversation */
  conversationChars: number;
}

/** One render: the template with these variables. */
export interface RenderJob {
  kind: 'render';
  vars: Record<string, unknown>;
}

/**
 * A training conversation: the whole one, and for each assistant message i the renders of
 * messages[:i] (with the generation prompt) and messages[:i+1], returned as their lengths when each is
 * a prefix of the next (data/chat.ts tokenizes those prefixes).
 */
export interface ConversationJob {
  kind: 'conversation';
  /** the variables except messages / add_generation_prompt */
  vars: Record<string, unknown>;
  messages: { role: string; content: string }[];
}

export type Job = RenderJob | ConversationJob;

export interface Turn {
  /** index of the assistant message */
  index: number;
  /** characters of the render of messages[:index] with the generation prompt */
  before: number;
  /** characters of the render of messages[:index + 1] */
  after: number;
}

export type JobResult =
  | { ok: true; text: string; turns?: Turn[] }
  | { ok: false; kind: 'limit' | 'parse' | 'template' | 'prefix' | 'crash'; message: string };

export interface WorkerRequest {
  template: string;
  jobs: Job[];
}

export interface WorkerInit {
  /** absolute path of @huggingface/jinja's CommonJS build */
  jinjaPath: string;
  limits: RenderLimits;
  /** Int32Array[1]: the index of the job being rendered (read by the pool when the worker dies) */
  progress: SharedArrayBuffer;
}

/** The worker's main (see the module doc): renders each request's jobs and posts JobResult[]. */
export function renderWorkerMain(load: (id: string) => unknown): void {
  const { parentPort, workerData } = load('node:worker_threads') as typeof import('node:worker_threads');
  const init = workerData as WorkerInit;
  const jinja = load(init.jinjaPath) as typeof import('@huggingface/jinja');
  const limits = init.limits;
  const progress = new Int32Array(init.progress);

  class LimitError extends Error {}
  class ParseError extends Error {}
  let steps = 0;
  let deadline = 0;

  /** Every string and list a step produces is measured; a step past a limit ends the render. */
  const check = (v: unknown): unknown => {
    const value = (v as { value?: unknown } | undefined)?.value;
    if (typeof value === 'string' && value.length > limits.chars) throw new LimitError(`a string longer than ${limits.chars} characters`);
    if (Array.isArray(value) && value.length > limits.items) throw new LimitError(`a list longer than ${limits.items} items`);
    return v;
  };
  const tick = (n = 1) => {
    steps += n;
    if (steps > limits.steps) throw new LimitError(`more than ${limits.steps} steps`);
    if ((steps & 255) < n && Date.now() > deadline) throw new LimitError(`more than ${limits.seconds} s`);
  };
  type Method = (this: unknown, node: unknown, env: unknown) => unknown;
  const proto = jinja.Interpreter.prototype as unknown as Record<'evaluate' | 'evaluateBlock', Method>;
  const evaluate = proto.evaluate;
  const evaluateBlock = proto.evaluateBlock; // once per loop iteration, so an empty body still counts
  const envProto = jinja.Environment.prototype as unknown as { set: (this: unknown, name: string, value: unknown) => unknown };
  const set = envProto.set;
  // The hooks below are @huggingface/jinja internals (0.5.x): without them no render is bounded, so none runs.
  if (![evaluate, evaluateBlock, set].every((f) => typeof f === 'function')) {
    throw new Error('@huggingface/jinja lacks Interpreter.evaluate / evaluateBlock or Environment.set: renders cannot be bounded');
  }
  // A for loop sets up every item before its first iteration: its iterable's length is charged as
  // steps, so a loop left by {% break %} is not free.
  const iterables = new WeakSet<object>();
  proto.evaluate = function (node, env) {
    tick();
    const n = node as { type?: string; iterable?: { type?: string; lhs?: object } };
    if (n.type === 'For' && n.iterable) iterables.add(n.iterable.type === 'SelectExpression' && n.iterable.lhs ? n.iterable.lhs : n.iterable);
    const v = check(evaluate.call(this, node, env));
    if (iterables.has(node as object)) {
      const items = (v as { value?: unknown }).value;
      tick(Array.isArray(items) ? items.length : items instanceof Map ? items.size : 0);
    }
    return v;
  };
  proto.evaluateBlock = function (node, env) {
    tick();
    return check(evaluateBlock.call(this, node, env));
  };

  /** Python's range, sized before anything is allocated. */
  const range = (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (![start, stop, step].every(Number.isSafeInteger)) throw new Error('range() takes integers');
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > limits.items) throw new LimitError(`range() of ${n} items, more than ${limits.items}`);
    tick(n);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = start + i * step;
    return out;
  };

  // The library's globals are declared through Environment.set (setupGlobals): range is swapped there.
  envProto.set = function (name, value) {
    return set.call(this, name, name === 'range' ? range : value);
  };

  const parsed = new Map<string, InstanceType<typeof jinja.Template>>();
  const render = (template: string, vars: Record<string, unknown>): string => {
    let t = parsed.get(template);
    if (!t) {
      try {
        t = new jinja.Template(template);
      } catch (e) {
        throw new ParseError(`does not parse: ${(e as Error).message}`);
      }
      parsed.set(template, t);
    }
    if (Date.now() > deadline) throw new LimitError(`more than ${limits.seconds} s`);
    steps = 0;
    const text = t.render(vars);
    check({ value: text });
    return text;
  };

  /** The conversation and its assistant turns' prefix renders, within the conversation's budget. */
  const conversation = (template: string, job: ConversationJob): JobResult => {
    const { vars, messages } = job;
    const text = render(template, { ...vars, messages, add_generation_prompt: false });
    let spent = text.length;
    const turns: Turn[] = [];
    for (let i = 0; i < messages.length; i++) {
      if (messages[i].role !== 'assistant') continue;
      const before = render(template, { ...vars, messages: messages.slice(0, i), add_generation_prompt: true });
      const after = render(template, { ...vars, messages: messages.slice(0, i + 1), add_generation_prompt: false });
      spent += before.length + after.length;
      if (spent > limits.conversationChars) {
        throw new LimitError(`more than ${limits.conversationChars} characters over the renders of the conversation's prefixes ` +
          '(one per assistant turn: shorten the conversation or split it into rows)');
      }
      if (!after.startsWith(before) || !text.startsWith(after)) {
        return { ok: false, kind: 'prefix', message: `the chat template does not render messages[:${i}] as a prefix of the conversation ` +
          '(the prefix property fails), so the assistant tokens cannot be located' };
      }
      turns.push({ index: i, before: before.length, after: after.length });
    }
    return { ok: true, text, turns };
  };

  /** A failure as the pool reports it: our limits, and the engine's own (stack, string length), are limits. */
  const failure = (e: unknown): JobResult => {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof LimitError) return { ok: false, kind: 'limit', message };
    if (e instanceof ParseError) return { ok: false, kind: 'parse', message };
    if (e instanceof RangeError && /call stack/i.test(message)) return { ok: false, kind: 'limit', message: 'recursion too deep' };
    if (e instanceof RangeError && /invalid (string|array) length/i.test(message)) {
      return { ok: false, kind: 'limit', message: `a string longer than ${limits.chars} characters` };
    }
    return { ok: false, kind: 'template', message };
  };

  parentPort?.on('message', ({ template, jobs }: WorkerRequest) => {
    const results = jobs.map((job, i): JobResult => {
      Atomics.store(progress, 0, i);
      deadline = Date.now() + limits.seconds * 1000; // per job: a conversation's renders share it
      try {
        return job.kind === 'render' ? { ok: true, text: render(template, job.vars) } : conversation(template, job);
      } catch (e) {
        return failure(e);
      }
    });
    parentPort.postMessage(results);
  });
}
