"""Recipe search for the cpu32 preset (kept as evidence; see docs/recipe/README.md).

A stand-alone copy of the training step with every knob exposed, run on the 889 ModelNet40 chairs
of the 3D ShapeNets release (all 12 rotations, padded 30 -> 32) for a fixed wall-clock budget.
Every `--every` steps it records D accuracy, fake occupancy, sample diversity (mean pairwise IoU
of 32 samples; 1.0 means every sample is the same) and quality (mean best IoU of a sample against
500 real chairs), and saves the samples.
"""
import argparse, json, time
import numpy as np, torch, torch.nn.functional as F
from gan3d.models.gan import ModelConfig, build

p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--data", default="/tmp/exp/chairs32.npy")
p.add_argument("--channels", default="128,64,32")
p.add_argument("--lr-g", type=float, default=2e-4)
p.add_argument("--lr-d", type=float, default=2e-4)
p.add_argument("--beta1", type=float, default=0.5)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--gate", type=float, default=0.8)
p.add_argument("--loss", default="bce", choices=["bce", "hinge", "lsgan"])
p.add_argument("--z", default="uniform", choices=["uniform", "normal"])
p.add_argument("--minutes", type=float, default=8)
p.add_argument("--every", type=int, default=100)
p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian instance noise added to D's inputs")
p.add_argument("--noise-anneal", type=int, default=0, help="steps over which the noise decays linearly to 0 (0 = constant)")
p.add_argument("--mbstd", action="store_true", help="minibatch standard deviation channel in D")
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
packed = np.load(a.data)
N = len(packed)
unpack = lambda idx: np.unpackbits(packed[idx], axis=1, count=32**3).reshape(len(idx), 1, 32, 32, 32).astype(np.float32)
cfg = ModelConfig(resolution=32, channels=tuple(int(c) for c in a.channels.split(",")), minibatch_std=a.mbstd)
G, D = build(cfg)
cl = torch.channels_last_3d
G, D = G.to(memory_format=cl), D.to(memory_format=cl)
og = torch.optim.Adam(G.parameters(), a.lr_g, betas=(a.beta1, 0.999))
od = torch.optim.Adam(D.parameters(), a.lr_d, betas=(a.beta1, 0.999))
rng = np.random.default_rng(0)
ref = torch.from_numpy(unpack(rng.choice(N, 500, replace=False))).reshape(500, -1) > 0.5
zfix = torch.rand(32, cfg.z_dim) if a.z == "uniform" else torch.randn(32, cfg.z_dim)

def dloss(lr, lf):
    if a.loss == "bce":
        return F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
    if a.loss == "hinge":
        return F.relu(1 - lr).mean() + F.relu(1 + lf).mean()
    return ((lr - 1) ** 2).mean() + (lf ** 2).mean()

def gloss(lf):
    if a.loss == "bce":
        return F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))
    if a.loss == "hinge":
        return -lf.mean()
    return ((lf - 1) ** 2).mean()

def recalibrate_bn(n_batches=8):
    # re-estimate BatchNorm statistics as a cumulative average over fresh latents
    bns = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in bns]
    for m in bns:
        m.reset_running_stats(); m.momentum = None
    with torch.no_grad():
        for _ in range(n_batches):
            G(torch.rand(64, cfg.z_dim) if a.z == "uniform" else torch.randn(64, cfg.z_dim))
    for m, (mom, _, _) in zip(bns, saved):
        m.momentum = mom

def diversity(s):
    sf = s.float(); inter = sf @ sf.T; cnt = sf.sum(1)
    iou = inter / (cnt[:, None] + cnt[None, :] - inter).clamp(min=1)
    return iou[~torch.eye(len(s), dtype=bool)].mean().item()

def evaluate():
    with torch.no_grad():
        st = [(m.running_mean.clone(), m.running_var.clone()) for m in G.modules() if isinstance(m, torch.nn.BatchNorm3d)]
        div_train = diversity((G(zfix) > 0.5).reshape(32, -1))
        for m, (rm, rv) in zip([m for m in G.modules() if isinstance(m, torch.nn.BatchNorm3d)], st):
            m.running_mean.copy_(rm); m.running_var.copy_(rv)
    recalibrate_bn()
    G.eval()
    with torch.no_grad():
        s = (G(zfix) > 0.5).reshape(32, -1)
    G.train()
    sf = s.float(); rf = ref.float()
    inter = sf @ sf.T; cnt = sf.sum(1)
    iou = inter / (cnt[:, None] + cnt[None, :] - inter).clamp(min=1)
    div = iou[~torch.eye(32, dtype=bool)].mean().item()
    inter2 = sf @ rf.T
    iou2 = inter2 / (cnt[:, None] + rf.sum(1)[None, :] - inter2).clamp(min=1)
    return div, div_train, iou2.max(1).values.mean().item(), s.float().mean().item(), s.reshape(32, 32, 32, 32).numpy()

log = open(f"/tmp/exp/{a.name}.jsonl", "w")
t0 = time.time(); step = 0; stats = []
while time.time() - t0 < a.minutes * 60:
    idx = rng.choice(N, a.batch, replace=False)
    x = torch.from_numpy(unpack(idx)).contiguous(memory_format=cl)
    z = torch.rand(a.batch, cfg.z_dim) if a.z == "uniform" else torch.randn(a.batch, cfg.z_dim)
    fake = G(z)
    sigma = a.noise * (max(0.0, 1 - step / a.noise_anneal) if a.noise_anneal else 1.0)
    noisy = (lambda t: t + sigma * torch.randn_like(t)) if sigma > 0 else (lambda t: t)
    fake_in = noisy(fake)
    lr_, lf_ = D(noisy(x)), D(fake_in.detach())
    ld = dloss(lr_, lf_)
    acc = 0.5 * ((lr_ > 0).float().mean() + (lf_ < 0).float().mean()).item()
    upd = acc <= a.gate
    if upd:
        od.zero_grad(set_to_none=True); ld.backward(); od.step()
    for q in D.parameters(): q.requires_grad_(False)
    lg = gloss(D(fake_in))
    og.zero_grad(set_to_none=True); lg.backward(); og.step()
    for q in D.parameters(): q.requires_grad_(True)
    step += 1
    stats.append((ld.item(), lg.item(), acc, upd, fake.detach().ge(0.5).float().mean().item()))
    if step % a.every == 0:
        div, div_train, q, occ, s = evaluate()
        m = np.mean(stats, 0); stats = []
        rec = dict(step=step, t=round(time.time() - t0), loss_d=m[0], loss_g=m[1], acc=m[2], d_upd=m[3], fake_occ_train=m[4], occ=occ, diversity_iou=div, diversity_iou_trainmode=div_train, best_real_iou=q)
        log.write(json.dumps(rec) + "\n"); log.flush()
        np.save(f"/tmp/exp/{a.name}_samples.npy", np.packbits(s.reshape(32, -1), axis=1))
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rec.items()}), flush=True)
