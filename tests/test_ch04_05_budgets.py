"""The label-budget chapters' shared analysis (ssfer.book.ch04_05_budgets), on small synthetic
run tables and fake records: what each function keys, names, glues and draws."""
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ssfer.book import ch04_05_budgets as budgets, figures, tables  # noqa: E402
from ssfer.book.runs import book_config, scale_of  # noqa: E402

SCALE = dict(n_train=4000, n_test=1000, image_size=24, model="test_resnet", steps=300, batch_size=32,
             device="auto")


def params(**over):
    """A page's checked parameters, as the budget chapters have them."""
    base = dict(SCALE, dataset="synthfer", data_root=None, channels=1, pretrained_path=None, difficulty=0.6,
                seeds=[0, 1, 2], cross_dataset=None, cross_root=None, cross_difficulty=1.0)
    return SimpleNamespace(**{**base, **over})


# accuracy per (row, method): DTA+SNL is FixMatch + 2 at every seed, FixMatch supervised + 1 (+ the seed)
BASE = {"supervised": 50.0, "FixMatch": 51.0, "DTA+SNL": 53.0}


def runs_table(rows=(100, 400), by="labels"):
    out = []
    for i, row in enumerate(rows):
        for method, acc in BASE.items():
            for seed in (0, 1, 2):
                out.append({by: row, "method": method, "seed": seed, "accuracy (%)": acc + 10 * i + seed,
                            "mean class accuracy (%)": acc - 5 + 10 * i + 2 * seed})
    return pd.DataFrame(out)


class Glue(dict):
    def __call__(self, name, value, display=True):
        assert display is False and name not in self, name
        self[name] = value


def test_pct_names_a_fraction_as_the_page_does():
    assert [budgets.pct(f) for f in (0.01, 0.1, 0.25, 1.0)] == ["1 %", "10 %", "25 %", "100 %"]


def test_a_real_data_set_without_its_folder_is_refused_naming_the_parameter():
    assert budgets.require_data_root(params(), "/data/X") is False
    assert budgets.require_data_root(params(dataset="rafdb", data_root="/d"), "/data/X") is True
    with pytest.raises(ValueError, match=r"^parameter 'data_root': dataset='rafdb' needs the folder .* "
                                         r"e\.g\. -p data_root /data/RAF-DB \(the folder"):
        budgets.require_data_root(params(dataset="rafdb"), "/data/RAF-DB (the folder holding EmoLabel/)")


def test_data_overrides_read_synthfer_at_its_difficulty_or_the_whole_real_splits():
    synth = budgets.data_overrides(params(difficulty=0.8), num_classes=8)
    assert synth == {"data__channels": 1, "model__pretrained_path": None, "data__difficulty": 0.8}
    real = budgets.data_overrides(params(dataset="affectnet", data_root="/a", channels=3), num_classes=8)
    assert real == {"data__channels": 3, "model__pretrained_path": None, "data__dataset": "affectnet",
                    "data__root": "/a", "data__n_train": None, "data__n_test": None,
                    "data__options": {"num_classes": 8}}
    assert "data__options" not in budgets.data_overrides(params(dataset="rafdb", data_root="/r"))


def test_grid_configs_are_the_runs_the_chapters_always_asked_for():
    """Same config as the chapters' former config_for, hence the same cached run."""
    P = params(seeds=[0, 2])
    data = budgets.data_overrides(P)
    rows = {b: {"split__protocol": "adacm_rafdb", "split__total": b} for b in (100, 400)}
    configs = budgets.grid_configs(P, rows, data)
    assert list(configs) == [(b, m, s) for b in (100, 400) for m in ("supervised", "FixMatch", "DTA+SNL")
                             for s in (0, 2)]
    for (b, m, s), cfg in configs.items():
        algo = {v: k for k, v in budgets.BUDGET_METHODS.items()}[m]
        before = book_config(**scale_of(P, seed=s, labels_per_class=10), algo__name=algo,
                             split__protocol="adacm_rafdb", split__total=b, train__progress=False, **data)
        assert cfg.hash() == before.hash()
    assert configs[400, "DTA+SNL", 2].split.seed == 2 and configs[400, "DTA+SNL", 2].algo.name == "dta_snl"
    real = params(dataset="affectnet", data_root="/data/AffectNet", seeds=[1])
    data = budgets.data_overrides(real, num_classes=8)
    cfg = budgets.grid_configs(real, {"1 %": {"split__protocol": "fraction", "split__fraction": 0.01}}, data)
    before = book_config(**scale_of(real, seed=1, labels_per_class=10), algo__name="fixmatch",
                         split__protocol="fraction", split__fraction=0.01, train__progress=False, **data)
    assert cfg["1 %", "FixMatch", 1].hash() == before.hash()
    assert (cfg["1 %", "FixMatch", 1].data.dataset, cfg["1 %", "FixMatch", 1].data.options) == (
        "affectnet", {"num_classes": 8})


def test_compare_at_each_pairs_every_method_pair_on_both_scores_at_every_row():
    runs = runs_table()
    c = budgets.compare_at_each(runs, "labels", [100, 400], "labels")
    assert list(c) == [(b, s, k) for b in (100, 400) for s in ("acc", "mca") for k in ("fix", "sup", "fixsup")]
    fix = c[100, "acc", "fix"]
    assert (fix.a, fix.b, fix.what) == ("DTA+SNL", "FixMatch", "accuracy (%), 100 labels")
    assert fix.differences == {0: 2.0, 1: 2.0, 2: 2.0}
    assert c[400, "mca", "fixsup"].differences == {0: 1.0, 1: 1.0, 2: 1.0}
    assert c[400, "acc", "sup"].what == "accuracy (%), 400 labels"
    shares = budgets.compare_at_each(runs_table(("1 %", "10 %"), "labeled share"), "labeled share", ["1 %"],
                                     "labeled")
    assert shares["1 %", "mca", "sup"].what == "mean class accuracy (%), 1 % labeled"


def test_the_paired_figure_shows_dta_against_fixmatch_on_both_scores_at_each_row():
    c = budgets.compare_at_each(runs_table(), "labels", [100, 400], "labels")
    ax = figures.plot_snl_against_fixmatch(c, [100, 400])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 4 and all(t.startswith("DTA+SNL − FixMatch") for t in labels)
    assert ax.get_title() == "DTA+SNL − FixMatch"
    plt.close("all")


def test_glue_means_glues_the_headline_means_and_every_comparison():
    runs = runs_table()
    c = budgets.compare_at_each(runs, "labels", [100, 400], "labels")
    g = Glue()
    budgets.glue_means(g, runs, "labels", {"low": 100, "top": 400}, c)
    assert g["acc_sup_low"] == 51.0 and g["acc_snl_top"] == 64.0 and type(g["acc_fix_low"]) is float
    assert not [k for k in g if k.startswith("mca_")]
    assert (g["fix_acc_low_mean"], g["fixsup_mca_top_mean"], g["sup_acc_top_n"]) == ("+2.0", "+1.0", 3)
    assert {f"{p}_{s}_{k}_verdict" for p in ("fix", "sup", "fixsup") for s in ("acc", "mca")
            for k in ("low", "top")} <= set(g)
    both = Glue()
    budgets.glue_means(both, runs, "labels", {"low": 100, "top": 400}, c, scores=("acc", "mca"))
    assert both["mca_fix_low"] == 48.0 and set(g) < set(both)


def test_the_scores_figure_draws_both_scores_against_the_budget_on_a_log_axis():
    runs = runs_table()
    g = figures.plot_scores_against_budget(runs, "labels", {100: "100", 400: "400"}, "labeled images", "t (x)")
    axes = list(g.axes.flat)
    assert [ax.get_title() for ax in axes] == ["accuracy (%)", "mean class accuracy (%)"]
    assert all(ax.get_xscale() == "log" for ax in axes)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["100", "400"]
    assert axes[0].get_xlabel() == "labeled images" and g.figure._suptitle.get_text() == "t (x)"
    plt.close("all")
    shares = runs_table(("1 %", "10 %"), "labeled share")
    g = figures.plot_scores_against_budget(shares, "labeled share", {1.0: "1", 10.0: "10"}, "share", "t",
                                           positions={"1 %": 1.0, "10 %": 10.0}, panels="row")
    assert g.axes.shape == (2, 1) and g.axes[1, 0].get_title() == "mean class accuracy (%)"
    line = g.axes[0, 0].get_lines()[0]
    assert sorted(line.get_xdata()) == [1.0, 10.0]
    plt.close("all")
    one = figures.plot_scores_against_budget(runs[runs["labels"] == 100], "labels", {100: "100"}, "x", "t")
    assert one.axes.flat[0].get_xscale() == "linear"   # one budget: no log axis
    plt.close("all")


def test_the_pages_runs_sit_below_the_published_rows_named_as_what_they_are():
    published = pd.DataFrame([{"method": "Ada-CM", "setting": "RAF-DB, 4000 labels", "accuracy (%)": 84.4,
                               "source": "paper"}])
    runs = runs_table((400, 100))
    t = budgets.beside_published(published, runs, "labels", "{where}, {row} labels (Ada-CM row)", params(), "SynthFER")
    assert list(t.columns) == ["method", "setting", "accuracy (%)", "source"] and len(t) == 7
    assert t.iloc[0]["method"] == "Ada-CM"
    mine = t.iloc[1]   # runs' own order, not sorted: 400 labels first
    assert (mine["method"], mine["setting"], mine["accuracy (%)"]) == (
        "supervised, test_resnet, from scratch", "SynthFER, 400 labels (Ada-CM row)", 51.0)
    assert set(t["source"][1:]) == {"this page, mean of 3 seed(s)"}
    pre = budgets.beside_published(published, runs, "labels", "{where}: {row}", params(pretrained_path="/w"), "X")
    assert pre.iloc[1]["method"].endswith("test_resnet, pre-trained") and pre.iloc[1]["setting"] == "X: 400"


def test_the_second_test_set_follows_the_parameters():
    synth = budgets.second_test_set(params(n_test=300, cross_difficulty=1.25))
    assert synth == budgets.SecondTestSet("synthfer", None, "SynthFER at difficulty 1.25",
                                          {"n": 300, "seed": 1, "difficulty": 1.25})
    assert budgets.second_test_set(params(dataset="rafdb", data_root="/r")) is None
    assert budgets.second_test_set(params(dataset="rafdb", cross_dataset="synthfer")).dataset == "synthfer"
    real = budgets.second_test_set(params(cross_dataset="ferplus", cross_root="/f"))
    assert (real.dataset, real.root, real.name, real.options) == ("ferplus", "/f", "ferplus test", {})
    with pytest.raises(ValueError, match=r"^parameter 'cross_root': cross_dataset='ferplus' needs its folder$"):
        budgets.second_test_set(params(cross_dataset="ferplus"))


def fake_records(rows=(100, 400)):
    return {(row, m, s): SimpleNamespace(summary={"accuracy": (BASE[m] + s) / 100}, name=(row, m, s))
            for row in rows for m in BASE for s in (0, 1, 2)}


def fake_test(rec, dataset, root, options, device="auto"):
    """A second test set on which every method loses 10 points; two images of an unknown class left out."""
    assert (dataset, root, options, device) == ("ferplus", "/f", {}, "cpu")
    return {"accuracy": rec.summary["accuracy"] - 0.1, "n": 98, "left_out": {"contempt": 2}}


def test_cross_table_tests_every_run_at_the_row_and_is_empty_without_a_second_test_set():
    test_set = budgets.SecondTestSet("ferplus", "/f", "ferplus test")
    t = budgets.cross_table(fake_records(), 400, test_set, device="cpu", test=fake_test)
    assert list(t.columns) == budgets.CROSS_COLUMNS and len(t) == 9
    assert list(t["method"][:3]) == ["supervised"] * 3 and list(t["seed"][:3]) == [0, 1, 2]
    assert t["own test set (%)"].tolist()[:2] == pytest.approx([50.0, 51.0])
    assert (t["own test set (%)"] - t["second test set (%)"]).round(6).eq(10.0).all()
    assert set(t["images"]) == {98} and set(t["left out"]) == {2}
    none = budgets.cross_table(fake_records(), 400, None, test=fake_test)
    assert none.empty and list(none.columns) == budgets.CROSS_COLUMNS


def test_glue_cross_glues_the_means_and_the_comparison_or_says_nothing_was_measured():
    test_set = budgets.SecondTestSet("ferplus", "/f", "ferplus test")
    g = Glue()
    budgets.glue_cross(g, budgets.cross_table(fake_records(), 400, test_set, "cpu", fake_test), test_set)
    assert (g["cross_name"], g["cross_sup"], g["cross_snl"]) == ("ferplus test", "41.0", "44.0")
    assert (g["cross_mean"], g["cross_n"]) == ("+2.0", 3) and "cross_verdict" in g
    empty = Glue()
    budgets.glue_cross(empty, budgets.cross_table(fake_records(), 400, None), None)
    assert empty == {"cross_name": "none (set cross_dataset and cross_root)", "cross_sup": "—", "cross_fix": "—",
                     "cross_snl": "—", "cross_mean": "—", "cross_low": "—", "cross_high": "—",
                     "cross_verdict": "not measured: no claim"}


def test_the_cross_figure_shows_both_test_sets_per_method():
    test_set = budgets.SecondTestSet("ferplus", "/f", "ferplus test")
    ax = figures.plot_cross(budgets.cross_table(fake_records(), 400, test_set, "cpu", fake_test),
                            "method (400 labels)", "SynthFER")
    assert ax.get_title() == "Trained on SynthFER, tested twice" and ax.get_xlabel() == "method (400 labels)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["supervised", "FixMatch", "DTA+SNL"]
    legend = ax.figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["own test set (%)", "second test set (%)"]
    plt.close("all")


@pytest.mark.slow
def test_cross_table_with_a_trained_run(tmp_path, tiny_overrides):
    """A real (few-step) run tested on a harder SynthFER draw through budgets.cross_test."""
    from ssfer.config import Config
    from ssfer.train import run

    rec = run(Config.default().with_overrides({**tiny_overrides, "train.steps": 2, "train.eval_every": 0}),
              cache_dir=tmp_path)
    test_set = budgets.second_test_set(params(n_test=40))
    t = budgets.cross_table({(1, "FixMatch", 0): rec}, 1, test_set, device="cpu")
    assert len(t) == 1 and t["images"][0] == 40 and 0 <= t["second test set (%)"][0] <= 100
    assert tables.num(t["own test set (%)"][0]) == tables.num(100 * rec.summary["accuracy"])
