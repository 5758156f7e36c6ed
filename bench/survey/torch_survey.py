"""PyTorch side of bench/survey.sh: training steps/s of one survey model (bench/survey/NAME.yaml),
one thread, random data of the same shapes, batch 64. Run with Debian's interpreter:
/usr/bin/python3 bench/survey/torch_survey.py resdown"""
import sys, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(1)
torch.manual_seed(0)
B = 64
sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
adam = lambda m: torch.optim.Adam(m.parameters(), lr=0.001)
image = lambda c=3, h=32: torch.rand(B, c, h, h)


class Embed(nn.Module):
    def __init__(s):
        super().__init__()
        s.e = nn.Embedding(20000, 64)
        s.f = nn.Sequential(nn.Flatten(), nn.Linear(32 * 64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(s, t):
        return s.f(s.e(t))


class ResDown(nn.Module):
    def __init__(s):
        super().__init__()
        s.a, s.b = nn.Conv2d(32, 64, 3, 2, 1), nn.Conv2d(64, 64, 3, 1, 1)
        s.s, s.o = nn.Conv2d(32, 64, 1, 2), nn.Linear(64 * 4 * 4, 10)

    def forward(s, x):
        y = F.relu(s.b(F.relu(s.a(x))) + s.s(x))
        return s.o(F.avg_pool2d(y, 4).flatten(1))


def model(name):
    if name == 'pool3':
        m = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                          nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                          nn.Flatten(), nn.Linear(32 * 8 * 8, 10))
        return m, image(), sgd(m)
    if name == 'cnn_bn':
        m = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
        return m, image(), sgd(m)
    if name == 'mlp_ln':
        m = nn.Sequential(nn.Linear(784, 512), nn.LayerNorm(512), nn.GELU(), nn.Linear(512, 512),
                          nn.LayerNorm(512), nn.GELU(), nn.Linear(512, 10))
        return m, torch.rand(B, 784), adam(m)
    if name == 'mlp_drop':
        m = nn.Sequential(nn.Linear(784, 256), nn.Tanh(), nn.Dropout(0.2), nn.Linear(256, 256),
                          nn.Sigmoid(), nn.Dropout(0.2), nn.Linear(256, 10))
        return m, torch.rand(B, 784), sgd(m)
    if name == 'embed':
        m = Embed()
        return m, torch.randint(0, 20000, (B, 32)), adam(m)
    if name == 'mobile':
        m = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(32, 32, 3, 2, 1, groups=32), nn.ReLU(), nn.Conv2d(32, 64, 1), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, 2, 1, groups=64), nn.ReLU(), nn.Conv2d(64, 128, 1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
        return m, image(), sgd(m)
    if name == 'resdown':
        m = ResDown()
        return m, image(32), sgd(m)
    sys.exit(f'torch_survey.py: no model {name}')


m, x, opt = model(sys.argv[1])
y = torch.randint(0, 10, (B,))


def step():
    opt.zero_grad()
    F.cross_entropy(m(x), y).backward()
    opt.step()


for i in range(10):
    step()
t, n = time.perf_counter(), 0
while time.perf_counter() - t < 2:
    step()
    n += 1
print(f'{n / (time.perf_counter() - t):.1f} steps/s')
