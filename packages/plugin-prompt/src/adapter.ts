/**
 * The AttachedAdapter every method here returns: the trainable tensors by their PEFT in-memory names,
 * optional optimizer groups (DePT's two learning rates), and save(), which writes what PEFT's
 * save_pretrained writes: the config and the tensors `files()` computes from the current parameters (for
 * the reparameterised encoders, their output: the MLP / LSTM / projection is not saved, as in PEFT).
 * Not here: the files' layout (format.ts), the configs (peft-config.ts).
 */
import {
  noGrad, tidy, type AdapterSummary, type AttachedAdapter, type NamedRawTensor, type ParamGroup, type Tensor,
} from '@peft/core-tensor';
import { saveInto } from './format.js';

export interface AdapterParts {
  params: [string, Tensor][];
  groups?: ParamGroup[];
  /** HF module paths the method replaced (NTK attention); [] for the hook methods. */
  modules?: string[];
  /** The saved config and tensors, from the parameters as they are now (run under noGrad in a scope). */
  files(): { config: Record<string, unknown>; tensors: NamedRawTensor[] };
}

export class PromptAdapter implements AttachedAdapter {
  constructor(readonly parts: AdapterParts) {}

  parameters(): [string, Tensor][] {
    return this.parts.params;
  }

  paramGroups(): ParamGroup[] {
    return this.parts.groups ?? [];
  }

  summary(): AdapterSummary {
    return { trainableParams: this.parts.params.reduce((n, [, t]) => n + t.size, 0), modules: this.parts.modules ?? [] };
  }

  /** The config and tensors save() writes (exposed for tests). */
  files(): { config: Record<string, unknown>; tensors: NamedRawTensor[] } {
    return noGrad(() => tidy(() => this.parts.files()));
  }

  async save(dir: string): Promise<void> {
    const { config, tensors } = this.files();
    await saveInto(dir, config, tensors);
  }
}
