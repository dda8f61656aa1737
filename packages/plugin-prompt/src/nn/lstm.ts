/**
 * torch.nn.LSTM(input_size, hidden_size, num_layers, dropout, bidirectional=True, batch_first=True) on one
 * sequence, built from core ops (P-tuning's LSTM reparameterisation, huggingface/peft
 * src/peft/tuners/p_tuning/model.py; it runs over the N virtual tokens, so they mix). Per layer and
 * direction, as torch documents nn.LSTM:
 *   [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh      (gate order i, f, g, o; 4h rows)
 *   c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),  h_t = sigmoid(o) tanh(c_t),  h_0 = c_0 = 0
 * The reverse direction reads the sequence backwards; a layer's output is [h_fwd | h_rev] [N, 2h], the next
 * layer's input (after dropout, in training, between layers only). Parameters and their init are torch's:
 * weight_ih_l{k}[_reverse] [4h, in], weight_hh_l{k} [4h, h], bias_ih_l{k}, bias_hh_l{k} [4h], all
 * U(-1/sqrt h, 1/sqrt h). At N = 5..100 steps a step is a few small GEMMs, so no fused kernel is needed.
 * Not here: the MLP after it (encoders.ts).
 */
import { isGradEnabled, ops, zeros, type Tensor, type TensorFloatDtype } from '@peft/core-tensor';
import { seedFor, tanh, type ParamFactory } from './layers.js';

interface Direction { wIh: Tensor; wHh: Tensor; bIh: Tensor; bHh: Tensor; suffix: string }

export class BiLstm {
  readonly #layers: Direction[][] = [];
  #calls = 0;

  constructor(f: ParamFactory, readonly name: string, inF: number, readonly hidden: number, readonly numLayers: number,
    readonly dropout: number) {
    const bound = 1 / Math.sqrt(hidden);
    for (let k = 0; k < numLayers; k++) {
      const width = k === 0 ? inF : 2 * hidden;
      this.#layers.push(['', '_reverse'].map((r) => {
        const s = `l${k}${r}`;
        return {
          wIh: f.uniform(`${name}.weight_ih_${s}`, [4 * hidden, width], bound), wHh: f.uniform(`${name}.weight_hh_${s}`, [4 * hidden, hidden], bound),
          bIh: f.uniform(`${name}.bias_ih_${s}`, [4 * hidden], bound), bHh: f.uniform(`${name}.bias_hh_${s}`, [4 * hidden], bound), suffix: s,
        };
      }));
    }
  }

  /** torch's named_parameters() order: per layer, forward then reverse, each weight_ih, weight_hh, bias_ih, bias_hh. */
  named(): [string, Tensor][] {
    return this.#layers.flat().flatMap((d): [string, Tensor][] => [
      [`${this.name}.weight_ih_${d.suffix}`, d.wIh], [`${this.name}.weight_hh_${d.suffix}`, d.wHh],
      [`${this.name}.bias_ih_${d.suffix}`, d.bIh], [`${this.name}.bias_hh_${d.suffix}`, d.bHh],
    ]);
  }

  /** x [N, in] -> the last layer's [N, 2h] (torch's output[0] for a batch of one). Dropout seeded by `seed` and a call counter. */
  forward(x: Tensor, seed: number): Tensor {
    const call = this.#calls++;
    let input = x;
    this.#layers.forEach((dirs, k) => {
      if (k > 0 && this.dropout > 0 && isGradEnabled()) {
        input = ops.dropout(input, this.dropout, { seed: seedFor(seed, `${this.name}.dropout.${k}.${call}`) });
      }
      input = ops.concat([this.#run(input, dirs[0], false), this.#run(input, dirs[1], true)], 1);
    });
    return input;
  }

  /** One direction over x [N, in] -> [N, h]. */
  #run(x: Tensor, d: Direction, reverse: boolean): Tensor {
    const N = x.shape[0];
    const h = this.hidden;
    const xw = ops.linear(x, d.wIh, d.bIh); // [N, 4h]
    let hPrev = zeros([1, h], { dtype: x.dtype as TensorFloatDtype });
    let c = zeros([1, h], { dtype: x.dtype as TensorFloatDtype });
    const out = new Array<Tensor>(N);
    for (let s = 0; s < N; s++) {
      const t = reverse ? N - 1 - s : s;
      const g = ops.add(xw.slice(0, t, t + 1), ops.linear(hPrev, d.wHh, d.bHh)); // [1, 4h]
      const gate = (j: number) => g.slice(1, j * h, (j + 1) * h);
      c = ops.add(ops.mul(ops.sigmoid(gate(1)), c), ops.mul(ops.sigmoid(gate(0)), tanh(gate(2))));
      hPrev = ops.mul(ops.sigmoid(gate(3)), tanh(c));
      out[t] = hPrev;
    }
    return ops.concat(out, 0);
  }
}
