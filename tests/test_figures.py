"""ssfer.book.figures: each chapter figure, drawn from small hand-made tables and records."""
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ssfer.book import figures, tables  # noqa: E402

NAMES = ["fear", "disgust", "happiness"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class FakeRecord:
    """What the figures read of a run record: history, summary, class names."""

    def __init__(self, history, summary=None, class_names=NAMES, steps=40):
        self.history = history
        self.summary = summary or {}
        self.class_names = list(class_names)
        self.config = SimpleNamespace(train=SimpleNamespace(steps=steps))

    def history_frame(self):
        return pd.DataFrame(self.history)


def _history(offset=0.0):
    return [{"step": s, "mask_rate": 0.1 * k, "pl_precision": 0.5 + 0.1 * k,
             "test_accuracy": 30.0 + offset + k if s % 20 == 0 else None,
             "thresholds": [0.5 + 0.1 * k, 0.6, 0.95], "neg_rate": 0.2 * k if k else None}
            for k, s in enumerate((10, 20, 30, 40))]


def _drawn(ax):
    """The axes' lines that hold data (seaborn adds empty ones for its legend)."""
    return [line for line in ax.lines if len(line.get_xdata())]


def _legend_labels(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_face_grid_has_a_row_per_class_and_per_class_columns():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])  # class 2 has only two faces
    faces = SimpleNamespace(images=np.zeros((8, 6, 6, 1), np.uint8), labels=labels, class_names=NAMES)
    fig = figures.face_grid(faces, per_class=3, title="three faces per class")
    assert len(fig.axes) == 9
    assert fig._suptitle.get_text() == "three faces per class"
    assert [fig.axes[3 * c].get_ylabel() for c in range(3)] == NAMES
    assert [len(ax.images) for ax in fig.axes[6:]] == [1, 1, 0]  # a missing face leaves its cell empty
    assert all(ax.get_xticks().size == 0 for ax in fig.axes)


def test_class_counts_draws_one_bar_per_class():
    ax = figures.class_counts(NAMES, np.array([5, 3, 20]), title="counts")
    assert [p.get_height() for p in ax.patches] == [5, 3, 20]
    assert (ax.get_title(), ax.get_ylabel()) == ("counts", "training images")


def test_learning_curves_one_line_per_run_over_the_evaluated_steps():
    records = {"a": FakeRecord(_history()), "b": FakeRecord(_history(offset=5.0))}
    ax = figures.learning_curves(records, title="curves")
    lines = _drawn(ax)
    assert len(lines) == 2
    assert list(lines[1].get_xdata()) == [20, 40] and list(lines[1].get_ydata()) == [36.0, 38.0]
    assert ax.get_legend() is None and _legend_labels(ax.figure) == ["a", "b"]  # the legend is below the plot
    assert ax.get_title() == "curves"


def test_pseudo_label_course_draws_accepted_share_and_precision():
    course = tables.pseudo_label_course({"FixMatch": FakeRecord(_history())})
    ax = figures.plot_pseudo_label_course(course, title="pseudo labels")
    assert len(_drawn(ax)) == 2
    assert _legend_labels(ax.figure) == ["accepted share", "precision"]
    assert ax.get_ylim() == (0, 1.02)


def test_class_panels_one_panel_per_method_one_line_per_class():
    thr = pd.concat([tables.threshold_course(FakeRecord(_history())).assign(method=m) for m in ("A", "B", "C")])
    g = figures.class_panels(thr, "threshold", NAMES, ["C", "A", "B"], ylabel="threshold τ_c", title="thresholds")
    assert [ax.get_title() for ax in g.axes.flat] == ["C", "A", "B"]
    assert all(len(_drawn(ax)) == 3 for ax in g.axes.flat)
    assert g.figure._suptitle.get_text() == "thresholds"
    assert "threshold τ_c" in {ax.get_ylabel() for ax in g.axes.flat}


def test_history_course_leaves_out_steps_without_a_value():
    records = {"x": FakeRecord(_history()), "y": FakeRecord(_history())}
    course = figures.history_course(records, {"neg_rate": "share with negatives", "mask_rate": "accepted"},
                                    key="selector")
    assert list(course.columns) == ["selector", "step", "metric", "value"]
    assert len(course[course["metric"] == "share with negatives"]) == 2 * 3  # the first step logged none
    g = figures.metric_panels(course, ["share with negatives", "accepted"], ["y", "x"], key="selector", title="t")
    assert [ax.get_title() for ax in g.axes.flat] == ["share with negatives", "accepted"]
    assert _legend_labels(g.figure) == ["y", "x"]


def test_confusion_normalises_each_row():
    summary = {"confusion": [[3, 1, 0], [0, 0, 0], [2, 2, 4]], "class_names": NAMES}
    ax = figures.confusion(summary, title="confusion")
    cells = [t.get_text() for t in ax.texts]
    assert cells == ["0.75", "0.25", "0.00", "0.00", "0.00", "0.00", "0.25", "0.25", "0.50"]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")


def test_recall_bars_one_bar_per_class_and_method():
    recall = pd.DataFrame([{"method": m, "class": c, "recall (%)": 10.0 * i + j}
                           for i, m in enumerate(("A", "B")) for j, c in enumerate(NAMES)])
    ax = figures.recall_bars(recall, NAMES, ["B", "A"], title="recall")
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert len(bars) == 5  # six bars, one of height 0
    assert _legend_labels(ax.figure) == ["B", "A"] and ax.get_ylim() == (0, 105)


def _runs(by, order, seeds=(0, 1, 2)):
    return pd.DataFrame([{by: v, "seed": s, "accuracy (%)": 50.0 + i + s, "mean class accuracy (%)": 40.0 + i}
                         for i, v in enumerate(order) for s in seeds])


def test_scores_by_variant_puts_the_variants_in_order():
    order = ["both", "one", "neither"]
    ax = figures.scores_by_variant(_runs("variant", order), order, xlabel="backbone variant", title="ablation")
    assert [t.get_text() for t in ax.get_xticklabels()] == order
    assert ax.get_xlabel() == "backbone variant" and ax.get_title() == "ablation"
    assert _legend_labels(ax.figure) == list(figures.SCORE_COLUMNS)


def test_seed_lines_names_each_seed_at_its_end():
    order = ["none", "NLNL", "SNL"]
    fig, (left, _) = plt.subplots(1, 2)
    ax = figures.seed_lines(_runs("selector", order, seeds=(3, 5)), order, by="selector", title="by seed", ax=left)
    assert ax is left and len(_drawn(ax)) == 2
    assert [(t.get_text(), t.xy) for t in ax.texts] == [("seed 3", (2, 55.0)), ("seed 5", (2, 57.0))]


def test_one_per_class_takes_the_classes_in_turn():
    labels = np.array([2, 0, 0, 1, 2, 0])
    assert figures.one_per_class(labels, 3, 4) == [1, 3, 0, 2]
    assert figures.one_per_class(labels, 3, 6) == [1, 3, 0, 2, 4]  # class 1 has no second sample: its turn is lost
    assert figures.one_per_class(labels, 3, 9) == [1, 3, 0, 2, 4, 5]


def test_attention_over_faces_two_rows_and_a_colour_bar():
    images = np.zeros((3, 12, 12, 1), np.uint8)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    fig = figures.attention_over_faces(images, [0, 2, 1], torch.full((3, 3, 3), 0.5), probs, NAMES)
    assert len(fig.axes) == 2 * 3 + 1
    assert [ax.get_title() for ax in fig.axes[:3]] == ["true: fear", "true: happiness", "true: disgust"]
    assert fig.axes[3].get_title() == "pred: fear\np = 0.70"
    assert fig.axes[3].images[1].get_clim() == (0.0, 1.0)  # a flat map gets the full scale
    assert "3x3 cells" in fig._suptitle.get_text()


class _DropCorner(torch.nn.Module):
    """Zeroes position (0, 0) of every other call in training mode."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        if not self.training:
            return x
        self.calls += 1
        out = x.clone()
        if self.calls % 2:
            out[:, :, 0, 0] = 0
        return out


def test_dropout_draws_finds_the_dropped_positions_and_the_panels_show_them():
    module = _DropCorner()
    before = torch.ones(1, 4, 3, 3)
    draws, dropped, identity = figures.dropout_draws(module, before, 6)
    assert draws.shape == (6, 4, 3, 3) and identity and not module.training
    assert dropped.shape == (6, 3, 3) and dropped.sum().item() == 3 and dropped[:, 0, 0].tolist() == [True, False] * 3
    fig = figures.dropout_panels(before, draws, dropped, title="drops", n_show=2)
    assert [ax.get_title() for ax in fig.axes[:-1]] == ["before", "draw 1", "draw 3"]  # and a colour bar
    assert fig.axes[0].get_ylabel() == "3x3 map"


def test_negated_classes_names_each_rows_set():
    neg = torch.tensor([[0, 1, 1], [0, 0, 0]])
    assert figures.negated_classes(neg, NAMES) == ["disgust, happiness", "—"]
    assert figures.negated_classes(neg, NAMES, none="nothing")[1] == "nothing"


def test_selector_masks_a_panel_per_selector_after_the_probabilities():
    probs = torch.softmax(torch.randn(2, 3), 1)
    masks = {name: torch.tensor([[0, 1, 0], [1, 0, 0]]) for name in ("none", "NLNL", "UPS-style", "CCL-style", "SNL")}
    fig = figures.selector_masks(probs, masks, NAMES, ["a", "b"], probs_title="teacher softmax at T = 2")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["teacher softmax at T = 2"] + [f"{n}: negated (red)" for n in masks]
    assert len(fig.axes[0].texts) == 6  # the probabilities are written in their cells


def test_legend_collisions_finds_a_legend_over_an_axis_label_and_legend_below_leaves_none():
    import seaborn as sns

    from ssfer.book.figures import legend_collisions

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], label="a long legend entry")
    ax.set_xlabel("training step")
    # anchored just under the axes, where the x label is drawn
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05))
    found = legend_collisions(fig)
    assert any("x label 'training step'" in f for f in found), found
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    for k in range(4):
        ax.plot([0, k], label=f"method {k}")
    ax.set(xlabel="training step", ylabel="accepted (%)")
    ax.tick_params(axis="x", labelrotation=35)
    figures.legend_below(ax, ncol=2)
    assert legend_collisions(fig) == []
    plt.close(fig)

    # chapter 06's pseudo-label figure: rotated class names push the x labels below the
    # figure's bottom edge, where a legend anchored at y=0 covered them
    classes = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    methods = ["Ada-CM", "DTA", "DTA+SNL", "FixMatch", "FlexMatch", "FreeMatch"]
    data = pd.DataFrame([{"class": c, "method": m, "measure": k, "value": 0.5}
                         for c in classes for m in methods for k in ("quantity", "precision")])
    g = sns.catplot(data=data, x="class", y="value", hue="method", col="measure", kind="bar", sharey=False,
                    height=3.6, aspect=1.5, legend_out=False)
    g.set_xticklabels(rotation=35, ha="right")
    figures.legend_below(g, ncol=4)
    assert legend_collisions(g.figure) == []
    assert g.legend.get_visible()
    plt.close("all")


def test_one_colour_per_method_and_per_class_in_every_figure():
    """A method or a class has the same colour on every page: the figures take it
    from figures.palette, and no notebook colours methods or classes by seaborn's cycle."""
    import json
    import re
    from pathlib import Path

    names = list(figures.METHOD_COLORS) + list(figures.CLASS_COLORS)
    colours = figures.palette(names)
    assert [colours[n] for n in figures.METHOD_COLORS] == list(figures.METHOD_COLORS.values())
    assert figures.palette(["fear", "DTA+SNL"]) == {"fear": figures.CLASS_COLORS["fear"],
                                                   "DTA+SNL": figures.METHOD_COLORS["DTA+SNL"]}
    assert len(set(figures.METHOD_COLORS.values())) == len(figures.METHOD_COLORS)
    assert len(set(figures.CLASS_COLORS.values())) == len(figures.CLASS_COLORS)
    spare = figures.palette(["run a", "run b", "FixMatch"])
    assert len(set(spare.values())) == 3 and spare["FixMatch"] == figures.METHOD_COLORS["FixMatch"]
    # every seaborn call of a notebook or of figures.py that colours by method or class names its palette
    repo = Path(__file__).resolve().parents[1]
    sources = [(p.name, "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"]
                                  if c["cell_type"] == "code"))
               for p in sorted((repo / "notebooks").rglob("*.ipynb"))]
    sources.append(("figures.py", (repo / "ssfer" / "book" / "figures.py").read_text()))
    for name, text in sources:
        for call in re.findall(r"sns\.\w+\((?:[^()]|\([^()]*\))*\)", text):
            if re.search(r'hue="(method|class)"', call) and "palette=" not in call:
                raise AssertionError(f"{name}: {call[:80]}... colours by method or class without the book's palette")


def test_the_forest_plot_marks_the_family_wise_verdict_and_the_margin():
    from ssfer.book.verdicts import compare

    table = pd.DataFrame([{"method": m, "seed": s, "accuracy (%)": 70.0 + d}
                          for m, ds in (("A", [2.0, 2.2, 1.8]), ("B", [0.1, -0.3, 0.4]), ("C", [0, 0, 0]))
                          for s, d in enumerate(ds)])
    comps = [compare(table, "A", "C", "accuracy (%)"), compare(table, "B", "C", "accuracy (%)"), None]
    ax = figures.plot_family(comps, [0.01, 0.9, float("nan")], ["A − C", "B − C", "D − C"], margin=1.0)
    lines = [line.get_xdata()[0] for line in ax.get_lines() if len(set(line.get_xdata())) == 1]
    assert {0, -1.0, 1.0} <= set(lines)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[0].startswith("D − C") and "not recorded yet" in ticks[0]
    assert "Holm p 0.010" in ticks[-1] and "Holm p 0.900" in ticks[1]
    assert _legend_labels(ax.figure) == ["Holm p ≤ 0.05: a family-wise difference",
                                         "Holm p > 0.05: no family-wise difference"]
    plt.close(ax.figure)


def test_the_label_efficiency_figure_has_a_log_axis_and_the_ceiling_band():
    runs = pd.DataFrame([{"labeled (%)": f, "method": m, "seed": s, "accuracy (%)": 60 + 5 * np.log10(f) + s}
                         for f in (1.0, 5.0, 10.0, 25.0) for m in ("supervised", "DTA+SNL") for s in range(3)])
    ceiling = pd.DataFrame([{"accuracy (%)": 80.0 + s} for s in range(5)])
    ax = figures.plot_label_efficiency(runs, ceiling)
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "5", "10", "25"]
    assert "supervised, every label (5 seeds)" in _legend_labels(ax.figure)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["DTA+SNL"].get_color() == figures.METHOD_COLORS["DTA+SNL"]
    plt.close(ax.figure)


def test_the_probe_curves_plot_each_pretraining_against_epochs_and_cpu_hours():
    curves = pd.DataFrame([{"pretraining": p, "epoch": e, "kNN accuracy (%)": 30 + e / 5 + k, "CPU hours": e * h}
                           for k, (p, h) in enumerate((("crop40", 0.05), ("crop20", 0.04))) for e in (5, 10, 15)])
    by_epoch, by_hours = figures.plot_probe_curves(curves)
    assert [line.get_label() for line in by_epoch.get_lines()] == ["crop40", "crop20"]
    crop20 = by_hours.get_lines()[1]
    assert list(crop20.get_xdata()) == pytest.approx([0.2, 0.4, 0.6])
    assert list(crop20.get_ydata()) == [32.0, 33.0, 34.0]
    assert by_epoch.get_ylabel() == "validation kNN accuracy (%)" and "CPU hours" in by_hours.get_xlabel()
    assert by_epoch.get_lines()[0].get_color() != crop20.get_color()
    plt.close(by_epoch.figure)
