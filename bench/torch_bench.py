"""PyTorch side of bench/run.sh: training steps/s of one benchmark model, one thread,
the models and settings of ../shared/bench/torch_anchor.py (random data of the same
shapes). Run with Debian's interpreter: /usr/bin/python3 bench/torch_bench.py mlp128"""
import sys, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
torch.manual_seed(0)
mlp = lambda h: nn.Sequential(nn.Linear(784, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))
lenet = lambda: nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                              nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                              nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
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
