"""The evaluation report: ROC and PR curves, score histograms, confusion matrix, and a gallery
of misclassified frames, as PNGs plus one report.html that shows them.

matplotlib draws the plots; without it the report still holds the tables and the gallery.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from surface_images.datasets import LabeledImage
from training import metrics

GALLERY_MAX = 24


def write_report(folder: Path, result: dict, labels: np.ndarray, scores: np.ndarray, items: Sequence[LabeledImage]) -> Path:
    """Write the PNGs and report.html into `folder`; return the HTML path."""
    folder = Path(folder)
    plots = _plots(folder, result, labels, scores)
    gallery = _gallery(folder, result, labels, scores, items)
    rows = "".join(
        f"<tr><th>{k}</th><td>{result[k]:.4f}</td></tr>" if isinstance(result[k], float) else f"<tr><th>{k}</th><td>{result[k]}</td></tr>"
        for k in ("roc_auc", "pr_auc", "accuracy", "recall", "precision", "false_positive_rate", "threshold", "n_images", "n_defective", "tp", "fp", "fn", "tn", "dagm_cost")
    )
    model = result["model"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation {html.escape(model['name'])} v{model['version']}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 10px;text-align:left}} img{{margin:4px}} figure{{display:inline-block;margin:4px}}</style></head><body>
<h1>{html.escape(model['name'])} v{model['version']} on {html.escape(str(result['data']['path']))} ({html.escape(str(result['data']['split']))})</h1>
<p>Backend {model['backend']}; {1000 * result['seconds_per_frame']:.1f} ms per frame; recall and false-positive rate at the stored threshold.</p>
<table>{rows}</table>
{''.join(f'<img src="{p}" width="420">' for p in plots)}
<h2>Misclassified frames ({len(result['misclassified'])}, first {GALLERY_MAX} shown; weak mask outlined in red)</h2>
{gallery or '<p>None.</p>'}
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path


def _plots(folder: Path, result: dict, labels: np.ndarray, scores: np.ndarray) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    threshold = result["threshold"]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    fpr, tpr = metrics.roc_curve(labels, scores)
    ax.plot(fpr, tpr)
    ax.set(xlabel="false positive rate", ylabel="recall", title=f"ROC (AUC {result['roc_auc']:.4f})")
    ax.plot([result["false_positive_rate"]], [result["recall"]], "ro", label="stored threshold")
    ax.legend(loc="lower right")
    names.append(_save(fig, folder / "roc.png"))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    recall, precision = metrics.pr_curve(labels, scores)
    ax.step(recall, precision, where="post")
    ax.set(xlabel="recall", ylabel="precision", title=f"precision-recall (AP {result['pr_auc']:.4f})", ylim=(0, 1.02))
    names.append(_save(fig, folder / "pr.png"))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="ok", log=True)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="defect", log=True)
    ax.axvline(threshold, color="k", linestyle="--", label="threshold")
    ax.set(xlabel="score", ylabel="frames", title="scores per class")
    ax.legend()
    names.append(_save(fig, folder / "score_histogram.png"))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    matrix = np.array([[result["tn"], result["fp"]], [result["fn"], result["tp"]]])
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=16)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["ok", "defect"], yticklabels=["ok", "defect"], xlabel="predicted", ylabel="true", title="confusion matrix")
    names.append(_save(fig, folder / "confusion_matrix.png"))
    return names


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def _gallery(folder: Path, result: dict, labels: np.ndarray, scores: np.ndarray, items: Sequence[LabeledImage]) -> str:
    wrong = [i for i in range(len(items)) if (scores[i] >= result["threshold"]) != bool(labels[i])]
    wrong.sort(key=lambda i: -abs(scores[i] - result["threshold"]))
    if not wrong:
        return ""
    (folder / "misclassified").mkdir(exist_ok=True)
    figures = []
    for i in wrong[:GALLERY_MAX]:
        image = items[i].read()
        thumb = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        mask = items[i].read_mask(image.shape)
        if mask.any():
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(thumb, contours, -1, (0, 0, 255), 2)
        name = f"misclassified/{i:05d}_{Path(items[i].path).stem}.png"
        cv2.imwrite(str(folder / name), cv2.resize(thumb, (256, 256 * image.shape[0] // image.shape[1]), interpolation=cv2.INTER_AREA))
        kind = "missed defect" if labels[i] else "false alarm"
        figures.append(f'<figure><img src="{name}" width="256"><figcaption>{html.escape(Path(items[i].path).name)}: {kind}, score {scores[i]:.3f}</figcaption></figure>')
    return "".join(figures)
