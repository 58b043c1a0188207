"""The evaluation report: ROC and PR curves, score histograms, confusion matrix, the
localisation numbers, and galleries of overlays (frame + defect-map heat + regions + true mask):
the misclassified frames, the defects whose strongest region missed the mask, and a sample of
correctly found defects. Plots are PNG files beside report.html; overlays are embedded in it.

matplotlib draws the plots; without it the report still holds the tables and the galleries.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from surface_images.datasets import LabeledImage
from training import metrics
from training.frames import fit_to_frame, fit_truth_to_frame
from training.localise import LocalisationTally
from training.overlays import overlay, png_data_uri

GALLERY_MAX = 24
CORRECT_SAMPLE = 12
LOCALISATION_ROWS = ("hit_rate", "defective_with_mask", "hits", "hit_rate_judged_defect", "judged_defect_with_mask",
                     "strongest_box_frame_share_median", "peak_distance_px_median", "peak_within_one_cell", "pixel_roc_auc", "pixel_ap", "region_level", "max_regions", "map_size")
LEGEND = ("green box: strongest region; yellow: other regions; red outline: true mask; heat: the model's defect map")


def write_report(folder: Path, result: dict, labels: np.ndarray, scores: np.ndarray, items: Sequence[LabeledImage],
                 tally: Optional[LocalisationTally] = None) -> Path:
    """Write the PNGs and report.html into `folder`; return the HTML path."""
    folder = Path(folder)
    plots = _plots(folder, result, labels, scores)
    judged = scores >= result["threshold"]
    wrong = [i for i in range(len(items)) if judged[i] != bool(labels[i])]
    wrong.sort(key=lambda i: -abs(scores[i] - result["threshold"]))
    hits = tally.hits if tally is not None else [None] * len(items)
    off_target = [i for i in range(len(items)) if hits[i] is False]
    found = [i for i in range(len(items)) if labels[i] and judged[i] and hits[i] is not False]
    sample = [found[k] for k in np.linspace(0, len(found) - 1, min(CORRECT_SAMPLE, len(found))).astype(int)] if found else []
    gallery = _gallery(result, labels, scores, items, tally, wrong[:GALLERY_MAX])
    missed_gallery = _gallery(result, labels, scores, items, tally, off_target[:GALLERY_MAX])
    correct_gallery = _gallery(result, labels, scores, items, tally, sample)
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
{_localisation_section(result)}
<h2>Misclassified frames ({len(wrong)}, first {GALLERY_MAX} shown)</h2>
<p>{LEGEND}.</p>
{gallery or '<p>None.</p>'}
<h2>Defects whose strongest region misses the true mask ({len(off_target)}, first {GALLERY_MAX} shown)</h2>
{missed_gallery or '<p>None.</p>'}
<h2>Correctly found defects (a sample of {len(sample)} of {len(found)})</h2>
{correct_gallery or '<p>None.</p>'}
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


def _localisation_section(result: dict) -> str:
    """The localisation table, or one line saying why there is none."""
    loc = result.get("localisation") or {}
    if "hit_rate" not in loc:
        return f"<h2>Localisation</h2><p>{html.escape(loc.get('note', 'not measured'))}.</p>"
    cells = "".join(f"<tr><th>{k}</th><td>{loc[k]:.4f}</td></tr>" if isinstance(loc[k], float) else f"<tr><th>{k}</th><td>{loc[k]}</td></tr>"
                    for k in LOCALISATION_ROWS)
    return f"<h2>Localisation</h2><p>{html.escape(loc['definition'])}.</p><table>{cells}</table>"


def _gallery(result: dict, labels: np.ndarray, scores: np.ndarray, items: Sequence[LabeledImage],
             tally: Optional[LocalisationTally], chosen: Sequence[int]) -> str:
    """Figures with embedded overlay PNGs of the chosen frames (at the model's input size, as the map saw them)."""
    figures = []
    for i in chosen:
        image = items[i].read()
        mask = items[i].read_mask(image.shape)
        if tally is not None and image.shape != tally.frame_shape:
            image = fit_to_frame(image, tally.frame_shape)
            mask = fit_truth_to_frame(mask, tally.frame_shape)
        defect_map = tally.maps[i] if tally is not None else None
        localisation = tally.localisations[i] if tally is not None else None
        judged = scores[i] >= result["threshold"]
        kind = {(1, True): "defect found", (1, False): "missed defect", (0, True): "false alarm", (0, False): "ok"}[(int(labels[i]), bool(judged))]
        where = ""
        if tally is not None and tally.hits[i] is not None:
            where = "; strongest region on the defect" if tally.hits[i] else "; strongest region OFF the defect"
        uri = png_data_uri(overlay(image, defect_map, localisation, mask))
        figures.append(f'<figure><img src="{uri}" width="256"><figcaption>{html.escape(Path(items[i].path).name)}: {kind}, '
                       f'score {scores[i]:.3f}{where}</figcaption></figure>')
    return "".join(figures)
