"""The paper's metrics on song-level scores.

Multi-label: macro ROC-AUC and PR-AUC (average precision) over labels, and both per label; a label
whose targets hold one class only has no AUC and is skipped (listed in `skipped_labels`).
Single-label: accuracy, macro F1 and the confusion matrix (rows = true, columns = predicted).
"""

from __future__ import annotations

import numpy as np


def compute_metrics(scores, targets, task: str, label_names: list[str]) -> dict:
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=bool)
    if scores.shape != targets.shape or scores.ndim != 2 or scores.shape[1] != len(label_names):
        raise ValueError(f"scores {scores.shape}, targets {targets.shape} and {len(label_names)} labels disagree")
    if task == "multilabel":
        return _multilabel(scores, targets, label_names)
    if task == "multiclass":
        return _multiclass(scores, targets, label_names)
    raise ValueError(f"unknown task {task!r}")


def _multilabel(scores, targets, label_names) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    per_label, skipped = {}, []
    for k, name in enumerate(label_names):
        column = targets[:, k]
        if column.all() or not column.any():
            skipped.append(name)
            continue
        per_label[name] = {"roc_auc": float(roc_auc_score(column, scores[:, k])),
                           "pr_auc": float(average_precision_score(column, scores[:, k])),
                           "positives": int(column.sum())}
    roc = [v["roc_auc"] for v in per_label.values()]
    pr = [v["pr_auc"] for v in per_label.values()]
    return {
        "task": "multilabel", "clips": int(scores.shape[0]),
        "roc_auc": float(np.mean(roc)) if roc else None, "pr_auc": float(np.mean(pr)) if pr else None,
        "labels_scored": len(per_label), "skipped_labels": skipped, "per_label": per_label,
    }


def _multiclass(scores, targets, label_names) -> dict:
    from sklearn.metrics import confusion_matrix, f1_score

    truth = targets.argmax(axis=1)
    predicted = scores.argmax(axis=1)
    classes = list(range(len(label_names)))
    return {
        "task": "multiclass", "clips": int(scores.shape[0]),
        "accuracy": float(np.mean(truth == predicted)) if len(truth) else None,
        "macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(truth, predicted, labels=classes).tolist(),
        "labels": list(label_names),
    }
