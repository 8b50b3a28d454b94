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

# the two scores the results figures show side by side
SCORE_COLUMNS = ("accuracy (%)", "mean class accuracy (%)")
# one colour per method and one per class, in every figure of the book (a method's
# display name, ssfer.algo.compose.display_name; a canonical class, ssfer.classes)
METHOD_COLORS = {"supervised": "#7f7f7f", "Pseudo-Label": "#bcbd22", "FixMatch": "#1f77b4",
                 "FlexMatch": "#17becf", "FreeMatch": "#9467bd", "Ada-CM": "#8c564b", "DTA": "#ff7f0e",
                 "DTA+SNL": "#d62728"}
CLASS_COLORS = {"surprise": "#17becf", "fear": "#9467bd", "disgust": "#2ca02c", "happiness": "#ff7f0e",
                "sadness": "#1f77b4", "anger": "#d62728", "neutral": "#7f7f7f", "contempt": "#8c564b"}


def palette(names: Sequence[str]) -> dict[str, str]:
    """The book's colour of each method or class in ``names`` (``METHOD_COLORS``,
    ``CLASS_COLORS``); a name the book has no colour for gets the next unused colour
    of matplotlib's cycle, so a figure never shows two names in one colour."""
    import matplotlib.pyplot as plt

    fixed = {**METHOD_COLORS, **CLASS_COLORS}
    spare = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if c not in fixed.values()]
    out = {}
    for name in dict.fromkeys(names):
        out[name] = fixed.get(name) or spare[len([n for n in out if n not in fixed]) % len(spare)]
    return out


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
    sns.lineplot(data=curves, x="step", y="test_accuracy", hue="run", marker="o", ax=ax,
                 palette=palette(list(records)))
    ax.set(xlabel="training step", ylabel="test accuracy (EMA teacher)", title=title)
    legend_below(ax, ncol=3)
    return ax


def plot_pseudo_label_course(course: pd.DataFrame, title: str | None = None, ax: Any = None) -> Any:
    """Accepted share and precision of the pseudo labels over training, from
    :func:`ssfer.book.tables.pseudo_label_course` (one run)."""
    import seaborn as sns

    ax = _axes(ax, (7, 3.8))
    sns.lineplot(data=course, x="step", y="value", hue="quantity", ax=ax)
    ax.set(xlabel="training step", ylabel="share", ylim=(0, 1.02), title=title)
    legend_below(ax, ncol=2)
    return ax


def class_panels(data: pd.DataFrame, y: str, classes: Sequence[str], panels: Sequence[str], *, panel: str = "method",
                 xlabel: str = "training step", ylabel: str | None = None, title: str | None = None,
                 ylim: tuple[float, float] = (0, 1.02), marker: str | None = None) -> Any:
    """One panel per value of ``panel`` (in the order ``panels``), one line per
    class (in the order ``classes``): ``y`` against ``step``."""
    import seaborn as sns

    extra = {"marker": marker} if marker else {}
    g = sns.relplot(data=data, x="step", y=y, hue="class", hue_order=list(classes), col=panel,
                    col_order=list(panels), col_wrap=2, kind="line", height=2.4, aspect=1.5,
                    palette=palette(classes), **extra)
    g.set_axis_labels(xlabel, ylabel if ylabel is not None else y)
    g.set_titles("{col_name}")
    g.set(ylim=ylim)
    legend_below(g, ncol=4)
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
                    height=2.8, aspect=1.3, facet_kws={"sharey": False}, palette=palette(order))
    g.set_axis_labels("training step", "")
    g.set_titles("{col_name}")
    legend_below(g, ncol=len(order))
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
    """Per-class test recall of each method, from :func:`ssfer.book.tables.recall_table`
    (one row per method and class)."""
    import seaborn as sns

    ax = _axes(ax, (7.5, 4.2))
    sns.barplot(data=recall, x="class", y="recall (%)", hue="method", order=list(classes), hue_order=list(methods),
                palette=palette(methods), ax=ax)
    ax.set(xlabel="expression", ylabel="test recall (%)", ylim=(0, 105), title=title)
    ax.tick_params(axis="x", labelrotation=30)
    legend_below(ax, ncol=3)
    return ax


def scores_by_variant(runs: pd.DataFrame, order: Sequence[str], by: str = "variant",
                      metrics: Sequence[str] = SCORE_COLUMNS, xlabel: str | None = None, title: str | None = None,
                      ax: Any = None) -> Any:
    """Each variant's scores: a dot per seed, a diamond for the mean, one colour
    per metric (``runs``: :func:`ssfer.book.tables.run_table`)."""
    import seaborn as sns

    long = runs.melt(id_vars=[by, "seed"], value_vars=list(metrics), var_name="metric", value_name="percent")
    ax = _axes(ax, (8.0, 4.4))
    sns.pointplot(data=long, x=by, y="percent", hue="metric", order=list(order), errorbar=None,
                  dodge=0.3, linestyle="none", markers="D", ax=ax)
    sns.stripplot(data=long, x=by, y="percent", hue="metric", order=list(order), dodge=True, jitter=False,
                  alpha=0.5, legend=False, ax=ax)
    ax.set(xlabel=xlabel if xlabel is not None else by, ylabel="test score (%), EMA teacher", title=title)
    legend_below(ax, ncol=2)
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


# ------------------------------------------------------------------ legends and comparisons
def legend_below(obj: Any, ncol: int = 3, title: str | None = None) -> None:
    """Move a legend below the plot, so it never covers data.

    ``obj``: a seaborn FacetGrid, or an Axes whose figure uses the constrained
    layout (``plt.subplots(layout="constrained")``), which makes room for it.
    """
    import seaborn as sns

    if hasattr(obj, "axes") and hasattr(obj, "add_legend"):  # a FacetGrid: its legend is the figure's
        # below the lowest text of the panels: rotated tick labels and the x labels under
        # them can reach past the figure's bottom edge, where a legend at y=0 would cover them
        fig = obj.figure
        if obj.legend is not None:
            obj.legend.set_visible(False)  # not part of the panels' extent
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        bottom = min(ax.get_tightbbox(renderer).y0 for ax in obj.axes.flat) / fig.bbox.height
        sns.move_legend(obj, "upper center", bbox_to_anchor=(0.5, min(0.0, bottom) - 0.01), ncol=ncol,
                        title=title, frameon=False)
        obj.legend.set_visible(True)
        return
    handles, labels = obj.get_legend_handles_labels()
    if obj.get_legend() is not None:
        obj.get_legend().remove()
    obj.figure.legend(handles, labels, loc="outside lower center", ncol=ncol, title=title, frameon=False)

def plot_paired(comparisons: Sequence[Any], ax=None, unit: str = "points", title: str | None = None):
    """Each comparison on one row: its per-seed differences (dots), their mean and 95 %
    interval (bar), and 0 (dashed): a bar that crosses 0 shows no difference."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 0.6 * len(comparisons) + 1.4), layout="constrained")
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        # each kind of mark in the legend once, whichever row shows it first
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for i, c in enumerate(comparisons):
        y = len(comparisons) - 1 - i
        d = list(c.differences.values())
        ax.scatter(d, [y] * len(d), color="0.55", s=18, zorder=2, label=once("one seed"))
        p = c.paired
        if p.n >= 2:
            ax.errorbar(p.mean, y, xerr=[[p.mean - p.low], [p.high - p.mean]], fmt="o", color="C0",
                        capsize=4, zorder=3, label=once("mean, 95 % interval"))
        else:
            ax.plot(p.mean, y, "D", color="C0", zorder=3, label=once("one seed only: no interval"))
    ax.axvline(0, color="0.3", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(comparisons)), [f"{c.label}\n{c.what}" for c in reversed(comparisons)])
    ax.set_ylim(-0.6, len(comparisons) - 0.4)
    ax.set_xlabel(f"paired difference ({unit})")
    if title:
        ax.set_title(title)
    legend_below(ax, ncol=2)
    return ax

def plot_steps_to_accuracy(frame: pd.DataFrame, ax=None, by: str = "method"):
    """One line per ``by`` value: mean validation accuracy over seeds at each
    evaluation step (``tables.time_to_accuracy``), band ± sd. Plotted against
    steps, not wall time: the runs shared cores with other jobs, so their clocks
    measure the machine's load as much as the method's cost (``ssfer bench``
    measures that, in one process)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    colors = palette(list(dict.fromkeys(frame[by])))
    for name, rows in frame.groupby(by, sort=False):
        g = rows.groupby("step")
        y, sd = g["val accuracy (%)"].mean(), g["val accuracy (%)"].std(ddof=1).fillna(0)
        ax.plot(y.index, y, marker="o", ms=3, label=name, color=colors[name])
        ax.fill_between(y.index, y - sd, y + sd, color=colors[name], alpha=0.15, lw=0)
    ax.set(xlabel="training step", ylabel="validation accuracy (%)")
    legend_below(ax, ncol=min(5, frame[by].nunique()))
    return ax


# ------------------------------------------------------------------ the label-budget chapters (04, 05)
# layout of the scores-against-budget figure: panels side by side (col) or stacked (row)
_LAYOUTS = {"col": {"height": 3.4, "aspect": 1.0, "y": 1.03}, "row": {"height": 2.8, "aspect": 2.2, "y": 1.02}}


def plot_scores_against_budget(runs: pd.DataFrame, by: str, ticks: Mapping[float, str], xlabel: str, title: str,
                               positions: Mapping[Any, float] | None = None, panels: str = "col"):
    """Both test scores against the budget: a line per method through its mean over
    the seeds, a dot per seed, on a log axis (with two budgets or more).

    ``ticks`` maps an x position to its label; ``positions`` maps a row to its x
    position where the row is not a number itself ("1 %" -> 1.0); ``panels`` puts
    the two scores side by side (``"col"``) or one above the other (``"row"``)."""
    import seaborn as sns

    layout = _LAYOUTS[panels]
    long = runs.melt(id_vars=[by, "method", "seed"], value_vars=list(SCORE_COLUMNS), var_name="metric",
                     value_name="percent")
    x = by
    if positions is not None:
        x = "position"
        long[x] = long[by].map(positions)
    g = sns.relplot(data=long, x=x, y="percent", hue="method", kind="line", marker="o", errorbar=None,
                    palette=palette(long["method"]),
                    height=layout["height"], aspect=layout["aspect"], facet_kws={"sharey": False},
                    **{panels: "metric"})
    for ax, metric in zip(g.axes.flat, g.col_names if panels == "col" else g.row_names):
        sns.stripplot(jitter=False, data=long[long["metric"] == metric], x=x, y="percent", hue="method",
                      palette=palette(long["method"]),
                      native_scale=True, dodge=False, size=3, alpha=0.6, legend=False, ax=ax)
        if len(ticks) > 1:  # a log axis needs two distinct values
            ax.set_xscale("log")
        ax.set_xticks(list(ticks), list(ticks.values()))
        ax.minorticks_off()
    g.set_axis_labels(xlabel, "test set (%)")
    g.set_titles(f"{{{panels}_name}}")
    legend_below(g, ncol=3)
    g.figure.suptitle(title, y=layout["y"])
    return g


def plot_snl_against_fixmatch(comparisons: Mapping[tuple[Any, str, str], Any], rows: Sequence[Any],
                              scores: Sequence[str] = ("acc", "mca")):
    """DTA+SNL − FixMatch on both scores at every row of a budget chapter, seed by
    seed (``plot_paired``; ``comparisons``: ``ch04_05_budgets.compare_at_each``)."""
    return plot_paired([comparisons[row, m, "fix"] for row in rows for m in scores],
                              title="DTA+SNL − FixMatch")


def plot_cross(cross: pd.DataFrame, xlabel: str, where: str):
    """Each method's accuracy on its own and on the second test set (bars: mean over
    the seeds, dots: seeds): what is lost on faces unlike the training ones."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
    both = cross.melt(id_vars=["method", "seed"], value_vars=["own test set (%)", "second test set (%)"],
                      var_name="test set", value_name="accuracy (%)")
    sns.barplot(data=both, x="method", y="accuracy (%)", hue="test set", errorbar=None, ax=ax)
    sns.stripplot(jitter=False, data=both, x="method", y="accuracy (%)", hue="test set", dodge=True,
                  palette="dark:black", size=3, legend=False, ax=ax)
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=f"Trained on {where}, tested twice")
    legend_below(ax, ncol=2)
    return ax


# ------------------------------------------------------------------ planned families and label budgets
def plot_family(comparisons: Sequence[Any], adjusted: Sequence[float], labels: Sequence[str], margin: float = 1.0,
                alpha: float = 0.05, title: str | None = None, ax: Any = None) -> Any:
    """A forest plot of one planned family: each comparison's mean paired
    difference and 95 % interval on its own row, 0 (dashed) and the margin ±δ
    (dotted) drawn, and the family-wise verdict marked: a filled dot where the
    Holm-adjusted p (``adjusted``) is at most ``alpha``, a hollow one where it is
    not. A comparison without runs (None) keeps its row, empty, and says so."""
    import matplotlib.pyplot as plt

    n = len(labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 0.55 * n + 1.5), layout="constrained")
    seen: set[str] = set()

    def once(label: str) -> str | None:
        if label in seen:
            return None
        seen.add(label)
        return label

    ticks = []
    for i, (c, q, label) in enumerate(zip(comparisons, adjusted, labels)):
        y = n - 1 - i
        p = c.paired if c is not None else None
        if p is None or p.n < 2:
            ticks.append(f"{label}\n(not recorded yet)" if p is None else f"{label}\n(one seed)")
            continue
        found = q <= alpha
        ax.errorbar(p.mean, y, xerr=[[p.mean - p.low], [p.high - p.mean]], fmt="o", color="0.2", capsize=4,
                    markerfacecolor="0.2" if found else "white", zorder=3,
                    label=once(f"Holm p ≤ {alpha:g}: a family-wise difference" if found
                               else f"Holm p > {alpha:g}: no family-wise difference"))
        ticks.append(f"{label}\n{p.n} seeds, Holm p {'< 0.001' if q < 0.001 else f'{q:.3f}'}")
    ax.axvline(0, color="0.3", linestyle="--", linewidth=1)
    for x in (-margin, margin):
        ax.axvline(x, color="0.5", linestyle=":", linewidth=1)
    ax.set_yticks(range(n), list(reversed(ticks)))
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(f"paired difference in test accuracy (points); dotted: the ±{margin:g}-point margin")
    if title:
        ax.set_title(title)
    if seen:
        legend_below(ax, ncol=1)
    return ax


def plot_label_efficiency(runs: pd.DataFrame, ceiling: pd.DataFrame | None = None, metric: str = "accuracy (%)",
                          ax: Any = None) -> Any:
    """Test accuracy against the labeled share on a log axis: one line per method
    through its mean over the seeds, with a band of the 95 % t-interval of that
    mean, a dot per seed; supervised training with every label (``ceiling``) as a
    horizontal band of the same kind. ``runs``: ``labeled (%)``, ``method``,
    ``seed`` and ``metric`` columns."""
    import matplotlib.pyplot as plt
    from scipy import stats as st

    def mean_band(values: pd.Series) -> tuple[float, float]:
        n = len(values)
        half = float(st.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        return float(values.mean()), half

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    colors = palette(list(dict.fromkeys(runs["method"])) + ["supervised"])
    for method, rows in runs.groupby("method", sort=False):
        stats = rows.groupby("labeled (%)")[metric].apply(mean_band)
        x = np.array(stats.index, dtype=float)
        mean = np.array([m for m, _ in stats])
        half = np.array([h for _, h in stats])
        ax.plot(x, mean, marker="o", color=colors[method], label=method)
        ax.fill_between(x, mean - half, mean + half, color=colors[method], alpha=0.15, lw=0)
        ax.scatter(rows["labeled (%)"], rows[metric], color=colors[method], s=8, alpha=0.5)
    if ceiling is not None and len(ceiling):
        m, h = mean_band(ceiling[metric])
        ax.axhspan(m - h, m + h, color=colors["supervised"], alpha=0.2, lw=0)
        ax.axhline(m, color=colors["supervised"], linestyle="--", linewidth=1,
                   label=f"supervised, every label ({len(ceiling)} seeds)")
    shares = sorted(set(runs["labeled (%)"]))
    ax.set_xscale("log")
    ax.set_xticks(shares, [f"{s:g}" for s in shares])
    ax.minorticks_off()
    ax.set(xlabel="labeled share of the training faces (%), log scale", ylabel=f"test {metric}")
    legend_below(ax, ncol=2)
    return ax


def plot_probe_curves(curves: pd.DataFrame, axes: Any = None) -> Any:
    """Each pretraining's validation kNN accuracy against its epochs (left) and
    against the CPU hours it had spent by then (right), one line per pretraining.
    ``curves``: ``pretraining``, ``epoch``, ``kNN accuracy (%)`` and ``CPU hours``."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9.5, 3.8), layout="constrained", sharey=True)
    colors = palette(list(dict.fromkeys(curves["pretraining"])))
    for name, rows in curves.groupby("pretraining", sort=False):
        for ax, x in zip(axes, ("epoch", "CPU hours")):
            ax.plot(rows[x], rows["kNN accuracy (%)"], marker="o", color=colors[name], label=name)
    axes[0].set(xlabel="epoch", ylabel="validation kNN accuracy (%)")
    axes[1].set(xlabel="CPU hours (this pretraining's own)")
    legend_below(axes[0], ncol=1)
    return axes
