/** The Module tree (HF names, replace, parameter filters) and a small MLP that learns. */
import { describe, expect, test } from 'vitest';
// Through the package root: the public surface, and proof that its import graph loads in any order.
import {
  backward, Embedding, frozenTensor, Linear, memoryStats, Module, ModuleList, noGrad, ops, randn, RMSNorm, tidy, type Tensor,
} from '../src/index.js';

/** The module skeleton of a 2-layer Llama, named as in its checkpoint. */
class Attention extends Module {
  q_proj = this.addModule('q_proj', Linear.create(8, 8, { bias: false, seed: 1 }));
  v_proj = this.addModule('v_proj', Linear.create(8, 4, { bias: false, seed: 2 }));
}

class Layer extends Module {
  self_attn = this.addModule('self_attn', new Attention());
  input_layernorm = this.addModule('input_layernorm', RMSNorm.create(8));
}

class Backbone extends Module {
  embed_tokens = this.addModule('embed_tokens', Embedding.create(16, 8, { seed: 3 }));
  layers = this.addModule('layers', new ModuleList([new Layer(), new Layer()]));
  norm = this.addModule('norm', RMSNorm.create(8));
}

class CausalLM extends Module {
  model = this.addModule('model', new Backbone());
  lm_head = this.addModule('lm_head', new Linear(frozenTensor({ kind: 'bf16', bits: new Uint16Array(16 * 8) }, [16, 8])));
}

/** A LoRA-like wrapper: what adapters put in place of a Linear. */
class Wrapped extends Module {
  constructor(readonly base: Linear) {
    super();
    this.addModule('base_layer', base);
  }
}

describe('Module tree', () => {
  test('Hugging Face module and parameter names', () => {
    const m = new CausalLM();
    const names = m.namedModules().map(([n]) => n);
    expect(names).toContain('model.layers.0.self_attn.q_proj');
    expect(names).toContain('model.layers.1.input_layernorm');
    expect(names[0]).toBe('');
    expect(m.namedParameters().map(([n]) => n)).toEqual([
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.v_proj.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.v_proj.weight',
      'model.layers.1.input_layernorm.weight',
      'model.norm.weight', 'lm_head.weight',
    ]);
    expect(m.getModule('model.layers.1.self_attn')).toBe(m.model.layers.at(1).child('self_attn'));
    m.dispose();
  });

  test('parameters({trainable}) separates trainable from frozen', () => {
    const m = new CausalLM();
    expect(m.parameters().length).toBe(9);
    expect(m.parameters({ trainable: true }).length).toBe(8);
    expect(m.parameters({ trainable: false }).map((t) => t.dtype)).toEqual(['bf16']);
    m.requiresGrad(false);
    expect(m.parameters({ trainable: true })).toEqual([]);
    expect(m.parameters({ trainable: false }).length).toBe(9);
    m.dispose();
  });

  test('replace swaps a module by name and updates the field', () => {
    const m = new CausalLM();
    const path = 'model.layers.0.self_attn.q_proj';
    const old = m.getModule(path) as Linear;
    const w = new Wrapped(old);
    expect(m.replace(path, w)).toBe(old);
    expect(m.getModule(path)).toBe(w);
    expect(m.model.layers.at(0).self_attn.q_proj).toBe(w);
    expect(m.namedParameters().map(([n]) => n)).toContain('model.layers.0.self_attn.q_proj.base_layer.weight');
    m.replace('model.layers.1', new Layer());
    expect(() => m.replace('model.layers.7.self_attn', w)).toThrow(/no module named/);
    expect(() => m.model.layers.at(5)).toThrow(/out of range/);
    m.dispose();
  });

  test('train / eval reach every module; zeroGrad drops gradients', () => {
    const m = new CausalLM().eval();
    expect(m.namedModules().every(([, x]) => !x.training)).toBe(true);
    m.train();
    expect(m.model.layers.at(1).self_attn.training).toBe(true);
    const lin = m.model.layers.at(0).self_attn.q_proj;
    const x = randn([2, 8], { seed: 4 });
    const loss = tidy(() => ops.sum(lin.forward(x)));
    backward(loss);
    // d(Σ x Wᵀ)/dW[o, i] = Σ_b x[b, i], the same for every output row o
    const xs = x.toArray();
    const want = Array.from({ length: 8 * 8 }, (_, k) => xs[k % 8] + xs[8 + (k % 8)]);
    expect(Math.max(...lin.weight.grad!.toArray().map((v, k) => Math.abs(v - want[k])))).toBeLessThan(1e-5);
    m.zeroGrad();
    expect(lin.weight.grad).toBeUndefined();
    loss.dispose();
    x.dispose();
    m.dispose();
  });

  test('frozen-weight Linear reports its sizes and never requires grad', () => {
    const lin = new Linear(frozenTensor({ kind: 'int8', cb: new Int8Array(12), scb: new Float32Array(3) }, [3, 4]));
    expect([lin.inFeatures, lin.outFeatures]).toEqual([4, 3]);
    lin.requiresGrad(true);
    expect(lin.weight.requiresGrad).toBe(false);
    lin.dispose();
  });
});

class Mlp extends Module {
  fc1 = this.addModule('fc1', Linear.create(4, 16, { seed: 1 }));
  fc2 = this.addModule('fc2', Linear.create(16, 3, { seed: 2, bias: false }));

  /** Mean squared error of fc2(silu(fc1(x))) against y [N, 3]. */
  mse(x: Tensor, y: Tensor): Tensor {
    return tidy(() => {
      const d = ops.sub(this.fc2.forward(ops.silu(this.fc1.forward(x))), y);
      return ops.mean(ops.mul(d, d));
    });
  }

  /** Classification with fc2 as the LM-head-style weight of the fused cross-entropy. */
  xent(x: Tensor, targets: Int32Array): Tensor {
    return tidy(() => ops.crossEntropy(ops.silu(this.fc1.forward(x)), this.fc2.weight, targets, { chunkRows: 8 }));
  }
}

function sgd(params: Tensor[], lr: number): void {
  for (const p of params) {
    const d = p.data;
    const g = p.grad!.data;
    for (let i = 0; i < d.length; i++) d[i] -= lr * g[i];
    p.grad!.dispose();
    p.grad = undefined;
  }
}

/** Trains `steps` SGD steps on lossFn; returns the losses and checks memory is flat after step 0. */
function train(net: Mlp, steps: number, lr: number, lossFn: () => Tensor): number[] {
  const losses: number[] = [];
  let stats = memoryStats();
  for (let step = 0; step < steps; step++) {
    const loss = lossFn();
    backward(loss);
    losses.push(loss.item());
    loss.dispose();
    sgd(net.parameters({ trainable: true }), lr);
    if (step === 0) stats = memoryStats();
    else expect(memoryStats()).toEqual(stats);
  }
  return losses;
}

describe('training a 2-layer MLP with SGD', () => {
  const x = randn([32, 4], { seed: 5 });
  const xd = x.data;

  test('regression (MSE): the loss goes down, memory stays flat', () => {
    const net = new Mlp();
    const y = tidy(() => {
      const s = ops.sum(x, 1, true); // [32, 1]
      return ops.concat([s, ops.neg(s), ops.mul(s, s)], 1);
    });
    const losses = train(net, 40, 0.05, () => net.mse(x, y));
    expect(losses[39]).toBeLessThan(0.5 * losses[0]);
    for (let i = 10; i < 40; i += 10) expect(losses[i]).toBeLessThan(losses[i - 10]);
    const evalLoss = noGrad(() => net.mse(x, y));
    expect(evalLoss.requiresGrad).toBe(false);
    for (const t of [evalLoss, y]) t.dispose();
    net.dispose();
  });

  test('classification (chunked cross-entropy): the loss goes down', () => {
    const net = new Mlp();
    const targets = Int32Array.from({ length: 32 }, (_, i) => (xd[i * 4] > 0 ? 1 : 0) + (xd[i * 4 + 1] > 0.5 ? 1 : 0));
    const losses = train(net, 40, 0.5, () => net.xent(x, targets));
    expect(losses[39]).toBeLessThan(0.7 * losses[0]);
    for (let i = 10; i < 40; i += 10) expect(losses[i]).toBeLessThan(losses[i - 10]);
    net.dispose();
  });
});
