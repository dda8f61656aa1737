#!/usr/bin/env python3
"""Golden fixtures for peft's optimizers, schedules and gradient clipping (packages/core-tensor/src/optim/).

What it is: torch 1.13 run in float32 (the dtype the trainer updates parameters in) on small parameters
with fixed gradients:
  sgd_<variant>   torch.optim.SGD (momentum, dampening, nesterov, weight_decay), 4 steps with a changing
                  lr; param "b" has no grad at step 2, so it is skipped (no state change), as torch does
  adamw_<variant> torch.optim.AdamW, 5 steps with a changing lr, same skipped step
  clip            torch.nn.utils.clip_grad_norm_ over two grads: once clipping (max_norm 1), once not
  schedules       the lr multipliers of transformers' get_scheduler (transformers/optimization.py:
                  _get_constant_lambda, _get_constant_schedule_with_warmup_lr_lambda,
                  _get_linear_schedule_with_warmup_lr_lambda, _get_cosine_schedule_with_warmup_lr_lambda,
                  copied below because transformers is not installed here) driven through torch's
                  LambdaLR exactly as the HF Trainer does: lr of optimizer step k = base_lr * lambda(k),
                  k = 0, 1, ... (the scheduler steps after the optimizer)
  sequence        what the trainer does per step: clip_grad_norm_(1.0), AdamW(weight_decay 0.01) at the
                  lr of a linear schedule with warmup 2 over 6 steps
Parameters are of 15 and 37 values so vectorized kernels also run their scalar tails.

Run (from the repo root; Debian's python has torch):
    /usr/bin/python3 scripts/ref/optim_reference.py
Writes packages/core-tensor/test/fixtures/optim/*.safetensors: F32 params/grads/results, F64 lrs,
the case's settings as JSON in __metadata__["config"]. Deterministic (fixed seed).
"""
import json
import math
import os

import torch

from ref_common import write_safetensors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "core-tensor", "test",
                   "fixtures", "optim")
SHAPES = {"a": (3, 5), "b": (37,)}
SKIP = ("b", 1)  # param b has no grad at step index 1


def write(name, tensors, config):
    meta = {"config": json.dumps(config), "source": f"scripts/ref/optim_reference.py torch {torch.__version__}"}
    return write_safetensors(os.path.join(OUT, name + ".safetensors"), tensors, meta)


def inputs(g, steps, grad_scale=1.0):
    """Initial params and per-step grads (f32), by name."""
    t = {}
    for name, shape in SHAPES.items():
        t[f"{name}.param0"] = torch.randn(shape, generator=g, dtype=torch.float32)
        t[f"{name}.grads"] = torch.randn((steps, *shape), generator=g, dtype=torch.float32) * grad_scale
    return t


def run(make_opt, t, lrs):
    """Steps an optimizer over the fixed grads; records every param after every step, and the state."""
    params = {n: torch.nn.Parameter(t[f"{n}.param0"].clone()) for n in SHAPES}
    opt = make_opt(list(params.values()))
    out = {}
    for s, lr in enumerate(lrs):
        for n, p in params.items():
            p.grad = None if (n, s) == SKIP else t[f"{n}.grads"][s].clone()
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        for n, p in params.items():
            out[f"{n}.step{s + 1}"] = p.detach().clone()
    for n, p in params.items():
        for key, v in opt.state[p].items():
            if torch.is_tensor(v) and v.numel() > 1:
                out[f"{n}.{key}"] = v.clone()
    return out


SGD_VARIANTS = {
    "plain": {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "momentum": {"momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "dampening": {"momentum": 0.9, "dampening": 0.1, "nesterov": False, "weight_decay": 0.0},
    "nesterov_wd": {"momentum": 0.8, "dampening": 0.0, "nesterov": True, "weight_decay": 0.01},
    "wd": {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.05},
}
ADAMW_VARIANTS = {
    "default": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "wd": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.1},
}


def sgd_case(g, cfg):
    lrs = [0.1, 0.05, 0.08, 0.02]
    t = inputs(g, len(lrs))
    t.update(run(lambda ps: torch.optim.SGD(ps, lr=lrs[0], **cfg), t, lrs))
    return t, {**cfg, "lrs": lrs}


def adamw_case(g, cfg):
    lrs = [1e-2, 3e-3, 0.0, 5e-3, 2e-2]
    t = inputs(g, len(lrs))
    t.update(run(lambda ps: torch.optim.AdamW(ps, lr=lrs[0], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                                              weight_decay=cfg["weight_decay"]), t, lrs))
    return t, {**cfg, "lrs": lrs}


def clip_case(g):
    t = {}
    for max_norm, tag in ((1.0, "clipped"), (1e3, "unclipped")):
        grads = [torch.randn(SHAPES[n], generator=g, dtype=torch.float32) * 0.7 for n in SHAPES]
        for n, gr in zip(SHAPES, grads):
            t[f"{tag}.{n}.grad"] = gr.clone()
        params = [torch.nn.Parameter(torch.zeros_like(gr)) for gr in grads]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        t[f"{tag}.norm"] = norm.reshape(1)
        for n, p in zip(SHAPES, params):
            t[f"{tag}.{n}.clipped"] = p.grad.clone()
    return t, {"clipped_max_norm": 1.0, "unclipped_max_norm": 1e3}


# ---- huggingface/transformers src/transformers/optimization.py, the lr multipliers ---------------------------------------------

def _get_constant_lambda(_=None):
    return 1


def _get_constant_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1.0, num_warmup_steps))
    return 1.0


def _get_linear_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))


def _get_cosine_schedule_with_warmup_lr_lambda(current_step, *, num_warmup_steps, num_training_steps, num_cycles):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


SCHEDULES = [
    # name, warmup, total steps, lambda
    ("constant", 0, 7, lambda w, n: _get_constant_lambda),
    ("constant_with_warmup", 4, 9,
     lambda w, n: lambda s: _get_constant_schedule_with_warmup_lr_lambda(s, num_warmup_steps=w)),
    ("linear", 3, 10,
     lambda w, n: lambda s: _get_linear_schedule_with_warmup_lr_lambda(s, num_warmup_steps=w, num_training_steps=n)),
    ("linear", 0, 5,
     lambda w, n: lambda s: _get_linear_schedule_with_warmup_lr_lambda(s, num_warmup_steps=w, num_training_steps=n)),
    ("cosine", 2, 11, lambda w, n: lambda s: _get_cosine_schedule_with_warmup_lr_lambda(
        s, num_warmup_steps=w, num_training_steps=n, num_cycles=0.5)),
    ("cosine", 0, 6, lambda w, n: lambda s: _get_cosine_schedule_with_warmup_lr_lambda(
        s, num_warmup_steps=w, num_training_steps=n, num_cycles=0.5)),
]


def lr_trace(base_lr, warmup, total, lam):
    """The lr each optimizer step runs at, as the HF Trainer drives LambdaLR (step, then scheduler.step())."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam(warmup, total))
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def schedules_case():
    base_lr, t, cases = 2e-4, {}, []
    for i, (name, warmup, total, lam) in enumerate(SCHEDULES):
        t[f"case{i}.lrs"] = torch.tensor(lr_trace(base_lr, warmup, total, lam), dtype=torch.float64)
        cases.append({"schedule": name, "warmup_steps": warmup, "total_steps": total})
    return t, {"lr": base_lr, "cases": cases}


def sequence_case(g):
    """Clip, schedule, AdamW: one trainer step after another."""
    steps, warmup, base_lr, max_norm = 6, 2, 5e-2, 1.0
    t = inputs(g, steps, grad_scale=0.5)
    params = {n: torch.nn.Parameter(t[f"{n}.param0"].clone()) for n in SHAPES}
    opt = torch.optim.AdamW(list(params.values()), lr=base_lr, weight_decay=0.01)
    lam = lambda s: _get_linear_schedule_with_warmup_lr_lambda(s, num_warmup_steps=warmup, num_training_steps=steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    norms = []
    for s in range(steps):
        for n, p in params.items():
            p.grad = t[f"{n}.grads"][s].clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)))
        opt.step()
        sched.step()
        for n, p in params.items():
            t[f"{n}.step{s + 1}"] = p.detach().clone()
    t["norms"] = torch.tensor(norms, dtype=torch.float64)
    cfg = {"steps": steps, "warmup_steps": warmup, "lr": base_lr, "max_grad_norm": max_norm, "schedule": "linear",
           "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
    return t, cfg


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20240707)
    cases = {f"sgd_{k}": sgd_case(g, v) for k, v in SGD_VARIANTS.items()}
    cases.update({f"adamw_{k}": adamw_case(g, v) for k, v in ADAMW_VARIANTS.items()})
    cases["clip"] = clip_case(g)
    cases["schedules"] = schedules_case()
    cases["sequence"] = sequence_case(g)
    total = sum(write(name, tensors, cfg) for name, (tensors, cfg) in cases.items())
    print(f"wrote {len(cases)} files, {total} bytes, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
