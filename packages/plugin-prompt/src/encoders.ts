/**
 * PEFT's three prompt encoders as trainable functions of their parameters (huggingface/peft v0.20.0):
 *
 *   PromptEmbedding  tuners/prompt_tuning/model.py  embedding [N, D]                                   -> [N, D]
 *   PromptEncoder    tuners/p_tuning/model.py       embedding [N, D] -> MLP: Linear(D,h) ReLU Linear(h,h) ReLU Linear(h,D)
 *                                                   or LSTM: BiLSTM(D,h,layers) -> Linear(2h,2h) ReLU Linear(2h,D) -> [N, D]
 *   PrefixEncoder    tuners/prefix_tuning/model.py  embedding [N, L*2*D], or embedding [N, D] -> Linear(D,h) Tanh
 *                                                   Linear(h, L*2*D)                                   -> [N, L*2*D]
 *
 * `output()` is what PEFT's get_prompt computes on prompt_tokens = arange(N) (an embedding lookup of every
 * row is the table itself) and what save_pretrained stores as `prompt_embeddings`. Parameter names are
 * PEFT's in-memory ones (`prompt_encoder.default.mlp_head.0.weight`), so a torch state dict maps one to one.
 * All default inits are torch's: nn.Embedding N(0, 1), nn.Linear / nn.LSTM uniform (layers.ts, lstm.ts).
 * Not here: the virtual-token inits from the vocabulary (init.ts), how outputs enter the model (hooks.ts).
 */
import type { Tensor } from '@peft/core-tensor';
import { BiLstm } from './nn/lstm.js';
import { ParamFactory, relu, tanh, TrainLinear } from './nn/layers.js';

export const PREFIX = 'prompt_encoder.default';

export interface Encoder {
  /** [N, width]: the virtual tokens (width D) or the flat prefix (width L*2*D). */
  output(): Tensor;
  /** The trainable tensors by PEFT's in-memory names. */
  named(): [string, Tensor][];
  /** The saved tensor needs an encoder run (P-tuning, projected prefix) rather than being the table itself. */
  readonly reparameterised: boolean;
}

/** PromptEmbedding / an un-projected PrefixEncoder: the table is the output. */
export class TableEncoder implements Encoder {
  readonly reparameterised = false;
  constructor(readonly table: Tensor) {}
  output(): Tensor {
    return this.table;
  }
  named(): [string, Tensor][] {
    return [[`${PREFIX}.embedding.weight`, this.table]];
  }
}

export interface PTuningShape { n: number; tokenDim: number; hidden: number; kind: 'MLP' | 'LSTM'; numLayers: number; dropout: number }

/** P-tuning's PromptEncoder (training form: embedding plus the MLP or LSTM head). */
export class PTuningEncoder implements Encoder {
  readonly reparameterised = true;
  readonly embedding: Tensor;
  readonly #lstm: BiLstm | undefined;
  readonly #mlp: TrainLinear[];
  readonly #seed: number;

  constructor(f: ParamFactory, readonly s: PTuningShape) {
    this.#seed = f.seed;
    const { n, tokenDim: D, hidden: h } = s;
    this.embedding = f.normal(`${PREFIX}.embedding.weight`, [n, D]);
    if (s.kind === 'LSTM') {
      this.#lstm = new BiLstm(f, `${PREFIX}.lstm_head`, D, h, s.numLayers, s.dropout);
      this.#mlp = [new TrainLinear(f, `${PREFIX}.mlp_head.0`, 2 * h, 2 * h), new TrainLinear(f, `${PREFIX}.mlp_head.2`, 2 * h, D)];
    } else {
      this.#mlp = [new TrainLinear(f, `${PREFIX}.mlp_head.0`, D, h), new TrainLinear(f, `${PREFIX}.mlp_head.2`, h, h),
        new TrainLinear(f, `${PREFIX}.mlp_head.4`, h, D)];
    }
  }

  /** mlp_head(embedding) or mlp_head(lstm_head(embedding)[0]); ReLU between the Linear layers. */
  output(): Tensor {
    let x = this.#lstm ? this.#lstm.forward(this.embedding, this.#seed) : this.embedding;
    this.#mlp.forEach((l, i) => {
      x = l.forward(x);
      if (i < this.#mlp.length - 1) x = relu(x);
    });
    return x;
  }

  named(): [string, Tensor][] {
    return [[`${PREFIX}.embedding.weight`, this.embedding], ...(this.#lstm?.named() ?? []), ...this.#mlp.flatMap((l) => l.named())];
  }
}

/** PrefixEncoder with prefix_projection (training form): embedding [N, D] -> Linear -> Tanh -> Linear [N, L*2*D]. */
export class ProjectedPrefixEncoder implements Encoder {
  readonly reparameterised = true;
  readonly embedding: Tensor;
  readonly transform: [TrainLinear, TrainLinear];

  constructor(f: ParamFactory, n: number, tokenDim: number, hidden: number, width: number, zeroLast: boolean) {
    this.embedding = f.normal(`${PREFIX}.embedding.weight`, [n, tokenDim]);
    this.transform = [new TrainLinear(f, `${PREFIX}.transform.0`, tokenDim, hidden), new TrainLinear(f, `${PREFIX}.transform.2`, hidden, width)];
    if (zeroLast) { // init_weights="zero": torch.nn.init.zeros_ on the last Linear's weight and bias
      this.transform[1].weight.data.fill(0);
      this.transform[1].bias.data.fill(0);
    }
  }

  output(): Tensor {
    return this.transform[1].forward(tanh(this.transform[0].forward(this.embedding)));
  }

  named(): [string, Tensor][] {
    return [[`${PREFIX}.embedding.weight`, this.embedding], ...this.transform.flatMap((l) => l.named())];
  }
}
