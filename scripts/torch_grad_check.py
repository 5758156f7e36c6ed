"""Cross-checks `descent grad` against PyTorch (Debian's python3-torch, run with
/usr/bin/python3): the same MLP, the same parameters and batch, the loss and every
parameter's gradient compared. Safetensors files are written and read here with numpy
alone, so that nothing beyond Debian's packages is needed.

  /usr/bin/python3 scripts/torch_grad_check.py build/descent
Exits 0 when every gradient matches to 1e-4 relative, 1 otherwise."""
import json, os, struct, subprocess, sys, tempfile
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

DT = {'F32': np.float32, 'I32': np.int32, 'I64': np.int64, 'F64': np.float64}
NAME = {np.dtype(v): k for k, v in DT.items()}

def save(path, tensors):
    header, off, blobs = {}, 0, []
    for k, v in tensors.items():
        v = np.ascontiguousarray(v)
        header[k] = {'dtype': NAME[v.dtype], 'shape': list(v.shape), 'data_offsets': [off, off + v.nbytes]}
        off += v.nbytes
        blobs.append(v.tobytes())
    h = json.dumps(header).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))

def load(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        out[k] = np.frombuffer(data[8 + n + a:8 + n + b], DT[v['dtype']]).reshape(v['shape'])
    return out

MODEL = """
inputs: {image: {shape: [batch, 20]}, label: {shape: [batch], dtype: i32}}
layers:
  - dense: {name: fc1, units: 16, activation: gelu}
  - layer_norm: {name: ln}
  - dense: {name: fc2, units: 12, activation: tanh}
  - dense: {name: fc3, units: 5}
loss: {type: softmax_cross_entropy, target: label, label_smoothing: 0.1}
"""

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.ln, self.fc2, self.fc3 = nn.Linear(20, 16), nn.LayerNorm(16), nn.Linear(16, 12), nn.Linear(12, 5)
    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(self.ln(F.gelu(self.fc1(x))))))

def main():
    descent = sys.argv[1] if len(sys.argv) > 1 else 'build/descent'
    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # give layer norm's affine parameters non-trivial values
        net.ln.weight.uniform_(0.5, 1.5); net.ln.bias.uniform_(-0.5, 0.5)
    x, y = torch.randn(7, 20), torch.randint(0, 5, (7,))
    loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
    loss.backward()
    d = tempfile.mkdtemp()
    p = lambda n: os.path.join(d, n)
    open(p('m.yaml'), 'w').write(MODEL)
    save(p('params.safetensors'), {k: v.detach().numpy() for k, v in net.state_dict().items()})
    save(p('inputs.safetensors'), {'image': x.numpy(), 'label': y.numpy().astype(np.int32)})
    subprocess.run([descent, 'grad', p('m.yaml'), '--params', p('params.safetensors'),
                    '--inputs', p('inputs.safetensors'), '--out', p('grads.safetensors')], check=True)
    g = load(p('grads.safetensors'))
    worst = abs(float(g['loss']) - loss.item()) / abs(loss.item())
    print(f'loss: descent {float(g["loss"]):.7f}, torch {loss.item():.7f}')
    for k, v in net.named_parameters():
        err = np.abs(g[k] - v.grad.numpy()).max() / (np.abs(v.grad.numpy()).max() + 1e-12)
        print(f'{k:12s} {str(list(v.shape)):10s} max relative error {err:.2e}')
        worst = max(worst, err)
    print('match' if worst < 1e-4 else 'MISMATCH')
    sys.exit(0 if worst < 1e-4 else 1)

main()
