/**
 * `loadAdapter` for `qst` and `lst` (eval / generate --adapter): reads the folder (core
 * readPeftAdapter), refuses one made for another base (architecture or shape: E_INPUT) or one whose
 * tensors do not make the side network (missing, extra, misshapen, non-finite: E_FORMAT), then taps the
 * backbone and installs the head hook with the tensors as constants. Everything is read and checked
 * before the model changes. A saved cache_features setting is ignored: inference never caches.
 * Not here: the folder's fields (format.ts), the network (ladder.ts).
 */
import { join } from 'node:path';
import { inputError, keep, tensor, type Llama } from '@peft/core-tensor';
import { checkBase, loadedSource, PEFT_TYPES, readPeftAdapter, settingsFromConfig } from './format.js';
import { sideHooks } from './head.js';
import { SideNetwork } from './ladder.js';
import { sideConfig, type Ladder } from './options.js';
import { BackboneTap, checkTappable, installTap } from './tap.js';

export async function loadSideAdapter(method: Ladder, model: Llama, dir: string, config: Record<string, unknown>): Promise<void> {
  const cfgFile = join(dir, 'adapter_config.json');
  if (String(config.peft_type).toUpperCase() !== PEFT_TYPES[method]) {
    throw inputError('E_FORMAT', `peft_type ${JSON.stringify(config.peft_type)} is not ${PEFT_TYPES[method]}`, cfgFile);
  }
  const s = settingsFromConfig(method, config, cfgFile);
  checkBase(config, model.config, dir);
  const side = sideConfig(model.config, s);
  if (model.hooks) throw inputError('E_INPUT', `${method} cannot be applied: the model already runs ${model.hooks.method}'s hooks`, dir);
  checkTappable(model, method, false);
  const adapter = await readPeftAdapter(dir);
  const file = join(adapter.dir, 'adapter_model.safetensors');
  const { source, left } = loadedSource(adapter.tensors, file, (v, shape) => keep(tensor(v, shape)));
  const net = new SideNetwork(s, model.config, side, source);
  const extra = left();
  if (extra.length > 0) {
    net.dispose();
    throw inputError('E_FORMAT', `${extra[0]} is not a tensor of this ${method} side network${extra.length > 1 ? ` (nor ${extra.length - 1} more)` : ''}`, file);
  }
  const tap = new BackboneTap();
  installTap(model, tap);
  model.setHooks(sideHooks(net, tap, model.model.norm));
}
