"""Cross-checks descent's compiled optimizers against torch.optim (Debian's
python3-torch, run with /usr/bin/python3): the same free parameters, the same loss, 10
training steps of each optimizer setting, then the parameters compared.

The model has no data: trainable parameters w1, w2, w3 with constant initial values,
frozen ones (trainable: false) c1, c2, and a loss whose gradient depends on both, so
the gradients change from step to step. `descent train --steps 10` prints the final
parameters (6 significant digits), which torch must reproduce.

  /usr/bin/python3 scripts/torch_optim_check.py build/descent
Exits 0 when every setting matches to 1e-4 relative (absolute at the 0.1 scale for
values nearer 0), 1 otherwise."""
import os, subprocess, sys, tempfile
import torch

MODEL = """
params:
  w1: {shape: [3], init: 0.5}
  w2: {shape: [2], init: -1.2}
  w3: {init: 2}
  c1: {shape: [3], init: 0.3, trainable: false}
  c2: {shape: [2], init: -0.7, trainable: false}
loss: "sum(w1 * c1 + 0.5 * w1 * w1) + sum(w2 * c2 + 0.25 * w2^4) + 3 * w3^2"
optimizer: %s
"""

INIT = {'w1': [0.5] * 3, 'w2': [-1.2] * 2, 'w3': 2.0}


def loss_of(w, c1, c2):
    return ((w['w1'] * c1 + 0.5 * w['w1'] * w['w1']).sum() +
            (w['w2'] * c2 + 0.25 * w['w2'] ** 4).sum() + 3 * w['w3'] ** 2)


O = torch.optim
# (descent's optimizer mapping, torch's optimizer, clip_grad_value, clip_grad_norm)
CASES = [
    ('{type: sgd, lr: 0.1}', lambda p: O.SGD(p, lr=0.1), None, None),
    ('{type: sgd, lr: 0.05, momentum: 0.9, dampening: 0.3, weight_decay: 0.05}',
     lambda p: O.SGD(p, lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.05), None, None),
    ('{type: sgd, lr: 0.05, momentum: 0.9, nesterov: true}',
     lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True), None, None),
    ('{type: adam, lr: 0.05}', lambda p: O.Adam(p, lr=0.05), None, None),
    ('{type: adam, lr: 0.05, betas: [0.9, 0.8], eps: 1e-6, weight_decay: 0.1, amsgrad: true}',
     lambda p: O.Adam(p, lr=0.05, betas=(0.9, 0.8), eps=1e-6, weight_decay=0.1, amsgrad=True),
     None, None),
    ('{type: adamw, lr: 0.05}', lambda p: O.AdamW(p, lr=0.05), None, None),
    ('{type: adamw, lr: 0.05, betas: [0.5, 0.9], weight_decay: 0.5, amsgrad: true}',
     lambda p: O.AdamW(p, lr=0.05, betas=(0.5, 0.9), weight_decay=0.5, amsgrad=True), None, None),
    ('rmsprop', lambda p: O.RMSprop(p), None, None),
    ('{type: rmsprop, lr: 0.01, alpha: 0.9, momentum: 0.5, weight_decay: 0.01, centered: true}',
     lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.01, centered=True),
     None, None),
    ('{type: adagrad, lr: 0.1}', lambda p: O.Adagrad(p, lr=0.1), None, None),
    ('{type: adagrad, lr: 0.1, lr_decay: 0.1, initial_accumulator_value: 0.2, weight_decay: 0.01}',
     lambda p: O.Adagrad(p, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.2, weight_decay=0.01),
     None, None),
    ('{type: sgd, lr: 0.05, momentum: 0.9, clip_grad_norm: 0.5}',
     lambda p: O.SGD(p, lr=0.05, momentum=0.9), None, 0.5),
    ('{type: adam, lr: 0.05, clip_grad_value: 0.3}', lambda p: O.Adam(p, lr=0.05), 0.3, None),
    ('{type: sgd, lr: 0.1, clip_grad_value: 0.5, clip_grad_norm: 0.8}',
     lambda p: O.SGD(p, lr=0.1), 0.5, 0.8),
]


def run_torch(make, clip_value, max_norm):
    w = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in INIT.items()}
    c1, c2 = torch.full((3,), 0.3), torch.full((2,), -0.7)
    opt = make(list(w.values()))
    for _ in range(10):
        opt.zero_grad()
        loss_of(w, c1, c2).backward()
        if clip_value is not None:  # value first, then norm: descent's order
            torch.nn.utils.clip_grad_value_(w.values(), clip_value)
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(w.values(), max_norm)
        opt.step()
    return {k: v.detach().reshape(-1).tolist() for k, v in w.items()}


def run_descent(descent, path):
    out = subprocess.run([descent, 'train', path, '--steps', '10'], check=True,
                         capture_output=True, text=True).stdout
    got = {}
    for line in out.splitlines():
        name, eq, vals = line.partition(' = ')
        if eq and name in INIT:
            got[name] = [float(x) for x in vals.split()]
    return got


def main():
    descent = sys.argv[1] if len(sys.argv) > 1 else 'build/descent'
    path = os.path.join(tempfile.mkdtemp(), 'm.yaml')
    worst = 0.0
    for yaml, make, clip_value, max_norm in CASES:
        open(path, 'w').write(MODEL % yaml)
        want, got = run_torch(make, clip_value, max_norm), run_descent(descent, path)
        err = max(abs(a - b) / max(abs(b), 0.1)  # near 0: absolute, at the 0.1 scale
                  for k in INIT for a, b in zip(got[k], want[k]))
        worst = max(worst, err)
        print(f'{err:.1e}  {yaml}   w3: descent {got["w3"][0]:.6g}, torch {want["w3"][0]:.6g}')
    print('match' if worst < 1e-4 else 'MISMATCH')
    sys.exit(0 if worst < 1e-4 else 1)


main()
