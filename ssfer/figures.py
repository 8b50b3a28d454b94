"""Figures the chapters draw from runs and models: each a function that takes
tables or records and an axes (or makes its figure), so that a chapter's cell
is the call, and a change of style is made once.

Each function returns what it drew on (an Axes, a Figure or a seaborn
FacetGrid); the chapter shows it with ``plt.show()``. The style (colours, fonts,
grid) is the chapter's ``sns.set_theme``; what a function fixes is the figure's
content: what is plotted against what, the axis labels, the legend's place.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ssfer import report

SCORES = ("accuracy (%)", "mean class accuracy (%)")


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _no_ticks(axes: Any) -> None:
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])


# ------------------------------------------------------------------ faces and data
def face_grid(faces: Any, per_class: int = 6, title: str | None = None) -> Any:
    """The first ``per_class`` faces of each class of a SynthFER-like set (``images``
    (n, h, w, 1) uint8, ``labels``, ``class_names``), one row per class."""
    import matplotlib.pyplot as plt

    n = len(faces.class_names)
    fig, axes = plt.subplots(n, per_class, figsize=(per_class * 1.1, n * 1.2), squeeze=False)
    for c, name in enumerate(faces.class_names):
        idx = np.flatnonzero(faces.labels == c)[:per_class]
        for j, ax in enumerate(axes[c]):
            if j < len(idx):
                ax.imshow(faces.images[idx[j]].squeeze(-1), cmap="gray", vmin=0, vmax=255)
            if j == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
    _no_ticks(axes)
    if title:
        fig.suptitle(title)
    return fig


def class_counts(class_names: Sequence[str], counts: Sequence[int], title: str | None = None, ax: Any = None) -> Any:
    """A bar per class: how many training images it has."""
    import seaborn as sns

    ax = _axes(ax, (6.5, 3.6))
    sns.barplot(x=list(class_names), y=counts, color="tab:blue", ax=ax)
    ax.set(xlabel="expression", ylabel="training images", title=title)
    ax.tick_params(axis="x", labelrotation=30)
    return ax


# ------------------------------------------------------------------ training curves
def learning_curves(records: Mapping[str, Any], title: str | None = None, ax: Any = None) -> Any:
    """The EMA teacher's test accuracy at every evaluation, one line per run
    (``records``: run name -> record)."""
    import seaborn as sns

    curves = pd.concat([rec.history_frame().assign(run=name) for name, rec in records.items()])
    curves = curves.dropna(subset=["test_accuracy"])
    ax = _axes(ax, (7, 4))
    sns.lineplot(data=curves, x="step", y="test_accuracy", hue="run", marker="o", ax=ax)
    ax.set(xlabel="training step", ylabel="test accuracy (EMA teacher)", title=title)
    report.legend_below(ax, ncol=3)
    return ax


def pseudo_label_course(course: pd.DataFrame, title: str | None = None, ax: Any = None) -> Any:
    """Accepted share and precision of the pseudo labels over training, from
    :func:`ssfer.report.pseudo_label_course` (one run)."""
    import seaborn as sns

    ax = _axes(ax, (7, 3.8))
    sns.lineplot(data=course, x="step", y="value", hue="quantity", ax=ax)
    ax.set(xlabel="training step", ylabel="share", ylim=(0, 1.02), title=title)
    report.legend_below(ax, ncol=2)
    return ax


def class_panels(data: pd.DataFrame, y: str, classes: Sequence[str], panels: Sequence[str], *, panel: str = "method",
                 xlabel: str = "training step", ylabel: str | None = None, title: str | None = None,
                 ylim: tuple[float, float] = (0, 1.02), marker: str | None = None) -> Any:
    """One panel per value of ``panel`` (in the order ``panels``), one line per
    class (in the order ``classes``): ``y`` against ``step``."""
    import seaborn as sns

    extra = {"marker": marker} if marker else {}
    g = sns.relplot(data=data, x="step", y=y, hue="class", hue_order=list(classes), col=panel,
                    col_order=list(panels), col_wrap=2, kind="line", height=2.4, aspect=1.5, palette="tab10",
                    **extra)
    g.set_axis_labels(xlabel, ylabel if ylabel is not None else y)
    g.set_titles("{col_name}")
    g.set(ylim=ylim)
    report.legend_below(g, ncol=4)
    if title:
        g.figure.suptitle(title, y=1.02)
    return g


def history_course(records: Mapping[str, Any], metrics: Mapping[str, str], key: str = "run") -> pd.DataFrame:
    """Logged diagnostics of several runs, long: ``key`` (the run's name in
    ``records``), ``step``, ``metric`` (the label ``metrics`` gives each history
    key) and ``value``; steps where a run logged no value are left out."""
    return pd.DataFrame([{key: name, "step": h["step"], "metric": label, "value": h[k]}
                         for name, rec in records.items() for h in rec.history
                         for k, label in metrics.items() if h.get(k) is not None],
                        columns=[key, "step", "metric", "value"])


def metric_panels(course: pd.DataFrame, metrics: Sequence[str], order: Sequence[str], key: str = "run",
                  title: str | None = None) -> Any:
    """One panel per metric of :func:`history_course` (each with its own y axis),
    one line per run, told apart by colour and dash (several may coincide)."""
    import seaborn as sns

    g = sns.relplot(data=course, x="step", y="value", hue=key, hue_order=list(order), style=key,
                    style_order=list(order), col="metric", col_order=list(metrics), col_wrap=2, kind="line",
                    height=2.8, aspect=1.3, facet_kws={"sharey": False})
    g.set_axis_labels("training step", "")
    g.set_titles("{col_name}")
    report.legend_below(g, ncol=len(order))
    if title:
        g.figure.suptitle(title, y=1.02)
    return g


# ------------------------------------------------------------------ scores
def confusion(summary: Mapping[str, Any], title: str | None = None, ax: Any = None) -> Any:
    """A run's test confusion matrix (``summary["confusion"]``, rows: true class),
    each row normalised to 1."""
    import seaborn as sns

    cm = np.array(summary["confusion"], dtype=float)
    cm = cm / cm.sum(1, keepdims=True).clip(min=1)
    ax = _axes(ax, (6.5, 5.2))
    sns.heatmap(cm, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, ax=ax,
                xticklabels=summary["class_names"], yticklabels=summary["class_names"])
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return ax


def recall_bars(recall: pd.DataFrame, classes: Sequence[str], methods: Sequence[str], title: str | None = None,
                ax: Any = None) -> Any:
    """Per-class test recall of each method, from :func:`ssfer.report.recall_table`
    (one row per method and class)."""
    import seaborn as sns

    ax = _axes(ax, (7.5, 4.2))
    sns.barplot(data=recall, x="class", y="recall (%)", hue="method", order=list(classes), hue_order=list(methods),
                ax=ax)
    ax.set(xlabel="expression", ylabel="test recall (%)", ylim=(0, 105), title=title)
    ax.tick_params(axis="x", labelrotation=30)
    report.legend_below(ax, ncol=3)
    return ax


def scores_by_variant(runs: pd.DataFrame, order: Sequence[str], by: str = "variant",
                      metrics: Sequence[str] = SCORES, xlabel: str | None = None, title: str | None = None,
                      ax: Any = None) -> Any:
    """Each variant's scores: a dot per seed, a diamond for the mean, one colour
    per metric (``runs``: :func:`ssfer.report.run_table`)."""
    import seaborn as sns

    long = runs.melt(id_vars=[by, "seed"], value_vars=list(metrics), var_name="metric", value_name="percent")
    ax = _axes(ax, (8.0, 4.4))
    sns.pointplot(data=long, x=by, y="percent", hue="metric", order=list(order), errorbar=None,
                  dodge=0.3, linestyle="none", markers="D", ax=ax)
    sns.stripplot(data=long, x=by, y="percent", hue="metric", order=list(order), dodge=True, jitter=False,
                  alpha=0.5, legend=False, ax=ax)
    ax.set(xlabel=xlabel if xlabel is not None else by, ylabel="test score (%), EMA teacher", title=title)
    report.legend_below(ax, ncol=2)
    return ax


def seed_lines(runs: pd.DataFrame, order: Sequence[str], by: str = "method", metric: str = "accuracy (%)",
               xlabel: str | None = None, ylabel: str = "test accuracy (%)", title: str | None = None,
               ax: Any = None) -> Any:
    """Each seed's runs as one line across the methods (in ``runs``' order, which
    must be ``order``), named at its right end instead of in a legend."""
    import seaborn as sns

    seeds = list(dict.fromkeys(runs["seed"]))
    ax = _axes(ax, (5.0, 4.6))
    sns.lineplot(data=runs.assign(seed=runs["seed"].map("seed {}".format)), x=by, y=metric, hue="seed",
                 marker="o", ax=ax, sort=False, legend=False)
    for i, seed in enumerate(seeds):
        y = runs[(runs["seed"] == seed) & (runs[by] == order[-1])][metric].iloc[0]
        ax.annotate(f"seed {seed}", (len(order) - 1, y), xytext=(6, 0), textcoords="offset points", va="center",
                    color=sns.color_palette()[i % 10], fontsize=9)
    ax.set(xlabel=xlabel if xlabel is not None else by, ylabel=ylabel, title=title)
    ax.tick_params(axis="x", labelrotation=30)
    return ax


# ------------------------------------------------------------------ inside the network
def one_per_class(labels: np.ndarray, n_classes: int, n: int) -> list[int]:
    """Indices of samples taking one of each class in turn (class 0's first,
    class 1's first, ..., class 0's second, ...) over ``n`` turns; a turn whose
    class has run out is skipped, so fewer than ``n`` may come back."""
    order = [np.flatnonzero(labels == c) for c in range(n_classes)]
    return [int(order[i % n_classes][i // n_classes]) for i in range(n)
            if i // n_classes < len(order[i % n_classes])]


def attention_over_faces(images: np.ndarray, labels: Sequence[int], att: Any, probs: Any,
                         class_names: Sequence[str]) -> Any:
    """Faces (top row) and the attention map over each (bottom row), upsampled
    to the face, on one colour scale stretched over the weights that occur (0..1
    for a flat map), with the true class, the prediction and its probability.

    ``images``: (n, h, w, 1) uint8; ``att``: (n, gh, gw) attention weights and
    ``probs``: (n, classes) probabilities, tensors of the same faces."""
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    size = tuple(images.shape[1:3])
    att_up = F.interpolate(att[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].cpu().numpy()
    lo, hi = float(att.min()), float(att.max())
    if hi - lo < 1e-3:
        lo, hi = 0.0, 1.0
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.0 * n + 1.0, 4.8), squeeze=False)
    for j in range(n):
        face = images[j].squeeze(-1)
        axes[0, j].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[0, j].set_title(f"true: {class_names[labels[j]]}", fontsize=9)
        axes[1, j].imshow(face, cmap="gray", vmin=0, vmax=255)
        im = axes[1, j].imshow(att_up[j], cmap="magma", alpha=0.55, vmin=lo, vmax=hi)
        p = probs[j]
        axes[1, j].set_title(f"pred: {class_names[int(p.argmax())]}\np = {float(p.max()):.2f}", fontsize=9)
    _no_ticks(axes)
    axes[0, 0].set_ylabel("face")
    axes[1, 0].set_ylabel("attention")
    fig.colorbar(im, ax=axes[1].tolist(), shrink=0.8, label="attention weight a")
    fig.suptitle(f"Spatial attention of the trained teacher ({att.shape[1]}x{att.shape[2]} cells, upsampled)")
    return fig


def dropout_draws(module: Any, before: Any, n_draws: int) -> tuple[Any, Any, bool]:
    """``n_draws`` passes of one feature map (1, C, h, w) through a dropout
    module in training mode: the draws (n_draws, C, h, w), the positions each
    dropped (n_draws, h, w: every channel zero where ``before`` was not), and
    whether the module is the identity in evaluation mode. Uses torch's global
    random generator; leaves the module in evaluation mode."""
    import torch

    with torch.no_grad():
        module.train()
        draws = torch.cat([module(before) for _ in range(n_draws)])
        module.eval()
        identity_in_eval = torch.equal(module(before), before)
    dropped = (draws == 0).all(1) & (before != 0).any(1)
    return draws, dropped, identity_in_eval


def dropout_panels(before: Any, draws: Any, dropped: Any, title: str | None = None, n_show: int = 5) -> Any:
    """The map before the dropout module and the first ``n_show`` draws that
    dropped something, each averaged over channels, on one colour scale."""
    import matplotlib.pyplot as plt

    show = dropped.flatten(1).any(1).nonzero().flatten()[:n_show].tolist()
    panels = [("before", before[0].mean(0))] + [(f"draw {i + 1}", draws[i].mean(0)) for i in show]
    vmax = max(t.max().item() for _, t in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels) + 1.0, 2.6), squeeze=False)
    for ax, (name, t) in zip(axes[0], panels):
        im = ax.imshow(t.cpu().numpy(), cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(name, fontsize=9)
    _no_ticks(axes)
    axes[0, 0].set_ylabel(f"{before.shape[2]}x{before.shape[3]} map")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, label="mean activation over channels")
    if title:
        fig.suptitle(title, y=1.04)
    return fig


# ------------------------------------------------------------------ complementary labels
def negated_classes(neg: Any, class_names: Sequence[str], none: str = "—") -> list[str]:
    """For each row of a 0/1 negative mask (faces × classes), the negated classes'
    names joined by commas (``none`` for an empty set)."""
    return [", ".join(n for n, v in zip(class_names, row) if v > 0) or none for row in np.asarray(neg).tolist()]


def selector_masks(probs: Any, masks: Mapping[str, Any], class_names: Sequence[str], faces: Sequence[str],
                   probs_title: str = "teacher softmax") -> Any:
    """The teacher's probabilities (first panel, annotated) and each selector's
    negated classes (one red panel per entry of ``masks``: title -> mask), on a
    2 × 3 grid (faces × classes)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(2, 3, figsize=(8, 6.4), sharex=True, sharey=True, layout="constrained")
    sns.heatmap(np.asarray(probs), annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=axes[0, 0],
                xticklabels=class_names, yticklabels=faces, annot_kws={"fontsize": 7})
    axes[0, 0].set_title(probs_title)
    for ax, (name, neg) in zip(axes.flat[1:], masks.items()):
        sns.heatmap(np.asarray(neg), cmap="Reds", vmin=0, vmax=1, cbar=False, ax=ax, linewidths=0.5,
                    linecolor="white", xticklabels=class_names, yticklabels=faces)
        ax.set_title(f"{name}: negated (red)")
    for ax in axes.flat:
        ax.set(xlabel="", ylabel="")
        ax.tick_params(axis="x", labelrotation=60)
    fig.supxlabel("class")
    return fig


# ------------------------------------------------------------------ checks
def legend_collisions(fig: Any) -> list[str]:
    """Where a legend of ``fig`` covers an axis's label, tick labels or title, as
    drawn: one line per collision (none: an empty list). The browser sees a figure only
    as an image, so this is the check a figure function's test makes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    texts = []
    for i, ax in enumerate(fig.axes):
        named = [("x label", ax.xaxis.label), ("y label", ax.yaxis.label), ("title", ax.title)]
        named += [("x tick label", t) for t in ax.get_xticklabels()]
        named += [("y tick label", t) for t in ax.get_yticklabels()]
        texts += [(f"axes {i} {what} {t.get_text()!r}", t) for what, t in named if t.get_visible() and t.get_text()]
    out = []
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for name, t in texts:
            if box.overlaps(t.get_window_extent(renderer)):
                out.append(f"the legend ({', '.join(x.get_text() for x in leg.get_texts())[:40]}) covers {name}")
    return out
