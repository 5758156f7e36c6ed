"""PyTorch side of bench/run.sh: training steps/s of one benchmark model, one thread,
the models and settings of ../shared/bench/torch_anchor.py (random data of the same
shapes); or, for 'fashion', the seconds the Fashion-MNIST MLP takes to train for 5 epochs
and its test accuracy. Run with Debian's interpreter: /usr/bin/python3 bench/torch_bench.py mlp128"""
import sys, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
torch.manual_seed(0)
mlp = lambda h: nn.Sequential(nn.Linear(784, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))
lenet = lambda: nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                              nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                              nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
if sys.argv[1] == 'fashion':  # time to accuracy, as torch_anchor.py: 784-256-10, Adam, batch 64, 5 epochs
    import gzip, numpy as np
    D = '/usr/share/datasets/fashion-mnist/'
    def idx(name, off):
        return np.frombuffer(gzip.open(D + name).read(), np.uint8, offset=off)
    Xtr = torch.tensor(idx('train-images-idx3-ubyte.gz', 16).reshape(-1, 784) / 255.0, dtype=torch.float32)
    Ytr = torch.tensor(idx('train-labels-idx1-ubyte.gz', 8).astype(np.int64))
    Xte = torch.tensor(idx('t10k-images-idx3-ubyte.gz', 16).reshape(-1, 784) / 255.0, dtype=torch.float32)
    Yte = torch.tensor(idx('t10k-labels-idx1-ubyte.gz', 8).astype(np.int64))
    m = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    t = time.perf_counter()
    for ep in range(5):
        perm = torch.randperm(60000)
        for i in range(0, 60000, 64):
            b = perm[i:i + 64]
            opt.zero_grad(); F.cross_entropy(m(Xtr[b]), Ytr[b]).backward(); opt.step()
    secs = time.perf_counter() - t
    with torch.no_grad():
        acc = (m(Xte).argmax(1) == Yte).float().mean().item()
    print(f'{secs:.2f} s to {acc:.4f}')
    sys.exit(0)
models = {'mlp128': (lambda: mlp(128), 32, (-1, 784)), 'mlp512': (lambda: mlp(512), 128, (-1, 784)),
          'lenet': (lenet, 64, (-1, 1, 28, 28))}
make, bs, shape = models[sys.argv[1]]
m = make()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x, y = torch.rand(bs, 784).reshape(shape), torch.randint(0, 10, (bs,))
def step():
    opt.zero_grad(); F.cross_entropy(m(x), y).backward(); opt.step()
for i in range(30):
    step()
t, n = time.perf_counter(), 0
while time.perf_counter() - t < 2:
    step(); n += 1
print(f'{n / (time.perf_counter() - t):.1f} steps/s')
