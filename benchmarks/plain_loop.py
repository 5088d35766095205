"""A plain PyTorch loop as the anchor of learning quality: what a few dozen lines reach on a store.

    python benchmarks/plain_loop.py STORE [--seed 0] [--epochs 15] [--precision auto|bf16|fp32]

AdamW (lr 1e-3, weight decay 0.01), cosine over the epochs, batch 23, the non-overlapping grid segments
of every training clip (train.h5 + valid.h5: no validation split), the last epoch's weights. Its own
definition of the sample-level model `sample-3-3-3-3-2-2-4-4-2-2` (Table 3, 8 kHz): no samplecnn import,
the store is read with h5py. Test at song level (mean of segment outputs per clip): accuracy for a
single-label store (softmax / cross-entropy), macro ROC-AUC for a multi-label one (sigmoid / BCE).
Under bf16 the test metric is also given in fp32 (`test_accuracy_fp32`: the same weights, other arithmetic).
Prints one JSON object.
"""

import argparse
import json
import math
import time

import h5py
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

FILTERS, CHANNELS = [3, 3, 3, 3, 2, 2, 4, 4, 2, 2], [128, 128, 128, 256, 256, 256, 256, 256, 512, 512]


def model(outputs: int) -> nn.Module:
    layers = [nn.Conv1d(1, CHANNELS[0], FILTERS[0], stride=FILTERS[0]), nn.BatchNorm1d(CHANNELS[0]), nn.ReLU()]
    for k, c_in, c in zip(FILTERS[1:], CHANNELS[:-1], CHANNELS[1:], strict=True):  # conv, BN, ReLU, pool
        layers += [nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0), nn.Conv1d(c_in, c, k), nn.BatchNorm1d(c),
                   nn.ReLU(), nn.MaxPool1d(k)]
    layers += [nn.Conv1d(CHANNELS[-1], 512, 1), nn.BatchNorm1d(512), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5),
               nn.Linear(512, outputs)]  # the time axis is 1 long here
    return nn.Sequential(*layers)


def segments(path: str, length: int):
    """(segments (S, T) float32, labels (S, L), clip of each segment (S,), clip labels (C, L), task)."""
    with h5py.File(path, "r") as f:
        audio, offsets, labels, task = f["audio"][:], f["offsets"][:], f["labels"][:], f.attrs["task"]
    rows, clips = [], []
    for c in range(len(offsets) - 1):
        clip = audio[offsets[c]:offsets[c + 1]].astype(np.float32) / 32768.0
        clip = np.pad(clip, (0, max(0, length - len(clip))))  # a short clip: one zero-padded segment
        n = len(clip) // length
        rows.append(clip[:n * length].reshape(n, length))
        clips += [c] * n
    clips = np.asarray(clips)
    return torch.from_numpy(np.concatenate(rows)), torch.from_numpy(labels[clips]).float(), clips, labels, task


def song_metric(net: nn.Module, test, multilabel: bool, bf16: bool) -> float:
    """Song-level test metric (mean of segment outputs per clip), under bf16 autocast or in fp32."""
    tx, _, tclips, tlabels, _ = test
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        out = torch.cat([net(tx[i:i + 64].unsqueeze(1)).float() for i in range(0, len(tx), 64)])
    scores = (torch.sigmoid(out) if multilabel else torch.softmax(out, 1)).numpy()
    song = np.zeros(tlabels.shape)
    np.add.at(song, tclips, scores)
    song /= np.bincount(tclips, minlength=len(tlabels))[:, None]
    if multilabel:
        kept = [k for k in range(tlabels.shape[1]) if 0 < tlabels[:, k].sum() < len(tlabels)]
        return float(np.mean([roc_auc_score(tlabels[:, k], song[:, k]) for k in kept]))
    return float((song.argmax(1) == tlabels.argmax(1)).mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    bf16 = a.precision == "bf16" or (a.precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    length = math.prod(FILTERS)
    parts = [segments(f"{a.store}/{s}.h5", length) for s in ("train", "valid")]
    x, y = torch.cat([q[0] for q in parts]), torch.cat([q[1] for q in parts])
    multilabel = parts[0][4] == "multilabel"
    loss_fn = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
    net = model(y.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    began, losses = time.perf_counter(), []
    for _ in range(a.epochs):
        net.train()
        total = 0.0
        batches = [b for b in torch.randperm(len(x)).split(23) if len(b) > 1]  # BN needs 2 per batch
        for b in batches:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                logits = net(x[b].unsqueeze(1))
            loss = loss_fn(logits.float(), y[b] if multilabel else y[b].argmax(1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        sched.step()
        losses.append(round(total / len(batches), 4))
    minutes = round((time.perf_counter() - began) / 60, 2)  # training alone, like the toolkit's summary
    net.eval()
    test = segments(f"{a.store}/test.h5", length)
    name = "test_roc_auc" if multilabel else "test_accuracy"
    metric = {name: song_metric(net, test, multilabel, bf16)}  # in the precision it trained in
    if bf16:  # the same weights in fp32: a bf16-trained model is not always the same model in fp32
        metric[f"{name}_fp32"] = song_metric(net, test, multilabel, False)
    print(json.dumps({"loop": "plain", "seed": a.seed, "epochs": a.epochs, "precision": "bf16" if bf16 else "fp32",
                      **metric, "train_segments": len(x), "train_losses": losses,
                      "minutes": minutes, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
