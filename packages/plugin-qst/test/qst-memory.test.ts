/**
 * The memory test of a QST step on an NF4 base: no backbone tensor needs grad (the states the head gets
 * carry no tape, every base weight stays frozen and gets no gradient), the recorded graph holds the side
 * network's ops only (one attention per side layer, none of the backbone's), and the live tensor bytes
 * when backward starts are exactly the loss plus the tensors that graph saved (parameters and rotary
 * tables aside, which exist before the step), which are exactly what the same side network saves when
 * it runs on its own from copies of the backbone's states.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { copyOf, keep, Llama, memoryStats, noGrad, tidy, type HeadOptions, type Node, type Tensor } from '@peft/core-tensor';
import { statesInput } from '../src/features.js';
import type { SideNetwork } from '../src/ladder.js';
import { Rotary } from '@peft/core-tensor';
import { attachCase, batchOf, readReference } from './helpers.js';

let models: Llama[] = [];
afterEach(() => {
  for (const m of models) m.dispose();
  models = [];
});

type Storage = Tensor['storage'];

/**
 * The ops reachable from t's node (with counts) and the storages they saved that the step made: not
 * `persistent` ones (parameters) nor the rotary tables rope nodes save.
 */
function graphOf(t: Tensor, persistent: Set<Storage>): { ops: Map<string, number>; saved: Set<Storage> } {
  const ops = new Map<string, number>();
  const saved = new Set<Storage>();
  const seen = new Set<Node>();
  const stack = t.node ? [t.node] : [];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    ops.set(n.op, (ops.get(n.op) ?? 0) + 1);
    for (const s of n.op === 'rope' ? [] : n.saved) if (!persistent.has(s.storage)) saved.add(s.storage);
    for (const x of n.inputs) if (x.node) stack.push(x.node);
  }
  return { ops, saved };
}

const bytesOf = (s: Set<Storage>) => [...s].reduce((n, st) => n + st.bytes, 0);

describe('a QST step on an NF4 base', () => {
  it('keeps no backbone tensor for backward: live bytes at backward = the side network\'s saved tensors', async () => {
    const ref = await readReference('qst_nf4');
    const { model, adapter } = await attachCase(ref);
    models.push(model);
    const ids = batchOf(ref.get('input_ids'));
    const labels = batchOf(ref.get('labels'));
    const head = model.hooks!.head!;
    const seen: { grad: boolean; taped: boolean }[] = [];
    const forward = head.forward.bind(head);
    head.forward = (states: Tensor[], o: HeadOptions) => {
      for (const s of states) seen.push({ grad: s.requiresGrad, taped: s.node !== undefined });
      return forward(states, o);
    };
    tidy(() => model.loss(ids, labels)).dispose(); // builds the rotary tables once
    const base = memoryStats().bytes;
    const loss = model.loss(ids, labels);
    const live = memoryStats().bytes - base;
    const persistent = new Set([...adapter.parameters(), ...model.namedParameters()].map(([, t]) => t.storage));
    const graph = graphOf(loss, persistent);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => !s.grad && !s.taped)).toBe(true);
    expect(graph.ops.get('attention')).toBe(model.config.numLayers); // the side layers' only
    expect(graph.ops.has('embedding')).toBe(false);
    expect(live).toBe(loss.storage.bytes + bytesOf(graph.saved));

    // The same side network on its own, fed copies of the backbone's states (a twin model; its final norm
    // hands over a copy of its input, the last layer's raw output).
    const twin = await Llama.fromFolder(ref.modelDir);
    models.push(twin);
    const norm = twin.model.norm;
    const normForward = norm.forward.bind(norm);
    let last: Tensor | undefined;
    norm.forward = (x, o) => {
      last = keep(copyOf(x));
      return normForward(x, o);
    };
    const states = noGrad(() => tidy(() => twin.forward(ids, { outputHiddenStates: true }).hiddenStates!.map((s) => keep(copyOf(s)))));
    const net = (adapter as unknown as { net: SideNetwork }).net;
    const rotary = new Rotary(net.side);
    const pos = Int32Array.from({ length: ids.data.length }, (_, i) => i % ids.shape[1]);
    const alone = tidy(() => {
      const out = net.forward(statesInput(states, last!, { r: 4, finalNorm: twin.model.norm }), { ...rotary.tables(ids.shape[1]), pos }, undefined);
      return model.lossFromHidden(out, labels);
    });
    const aloneGraph = graphOf(alone, persistent);
    expect(bytesOf(graph.saved)).toBe(bytesOf(aloneGraph.saved));
    expect([...graph.ops].sort()).toEqual([...aloneGraph.ops].sort());
    expect(alone.item()).toBeCloseTo(loss.item(), 6);

    loss.backward();
    loss.dispose();
    alone.dispose();
    for (const t of [...states, last!]) t.dispose();
    rotary.dispose();
    for (const [, t] of adapter.parameters()) expect(t.grad).toBeDefined();
    expect(model.namedParameters().filter(([, t]) => t.requiresGrad || t.grad).map(([n]) => n)).toEqual([]);
  });
});
