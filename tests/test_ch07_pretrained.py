"""Chapter 07, "With a pretrained backbone": the pretrainings and their probe
curves, the gate named before it is measured, and what the pretrained start
changes against the verdicts from scratch (issue 32)."""
from pathlib import Path

import pandas as pd
import pytest

from ssfer.book import ch06_real_faces as ch06, ch07_pretrained as ch07, grid_tables, pretraining_grid
from ssfer.pretrain.config import PretrainConfig
from ssfer.pretrain.record import PretrainRecord

REPO = Path(__file__).resolve().parents[1]
PRIMARY = dict(grid_tables.PRIMARY)
PRE = {**PRIMARY, "variant": ch07.VARIANT}


def _record(accuracies: list[float], seconds_per_epoch: float, crop: float = 0.4) -> PretrainRecord:
    cfg = PretrainConfig.from_yaml(REPO / "configs" / "synthfer_pretrain.yaml").with_overrides(
        {"train.epochs": 5 * len(accuracies), "views.crop_scale": [crop, 1.0], "probe.every": 5})
    history = [{"epoch": 5 * (i + 1), "step": 10 * (i + 1), "probe_accuracy": a,
                "seconds": 5 * (i + 1) * seconds_per_epoch, "cpu_seconds": 5 * (i + 1) * seconds_per_epoch}
               for i, a in enumerate(accuracies)]
    return PretrainRecord(cfg, history, {"probe_accuracy": accuracies[-1],
                                         "cpu_seconds": 5 * len(accuracies) * seconds_per_epoch})


def _pre(rows: list[dict], pretrainings: dict | None = None, finals: dict | None = None) -> ch07.Pretrained:
    every = pd.DataFrame(rows, columns=["run", *PRIMARY, "method", "seed", "accuracy (%)", "val accuracy (%)"])
    families = grid_tables.load_families(REPO / "results" / "grid.yaml")
    planned = {n: pretraining_grid.PlannedPretraining(n, "p.yaml") for n in ("pilot_a", "pilot_b")}
    planned |= {n: pretraining_grid.PlannedPretraining(n, str(REPO / "configs" / "synthfer_pretrain.yaml"), sets)
                for n, sets in (finals or {}).items()}
    return ch07.Pretrained(ch06.Recorded({}, [], every, families=families), planned, pretrainings or {})


def _runs(variant: str, method: str, scores: list[float], val: list[float] | None = None) -> list[dict]:
    return [{**PRIMARY, "variant": variant, "run": f"{variant}_{method}_s{s}", "method": method, "seed": s,
             "accuracy (%)": x, "val accuracy (%)": (val or scores)[s]} for s, x in enumerate(scores)]


def test_the_pretrainings_table_and_curves_say_what_is_recorded_and_the_best():
    pre = _pre([], {"pilot_a": _record([0.30, 0.36, 0.38], 3600.0 / 5), "pilot_b": _record([0.31, 0.40], 1800.0 / 5, 0.2)})
    table = ch07.pretraining_table(pre).set_index("pretraining")
    assert table.loc["pilot_a", "kNN accuracy (%)"] == pytest.approx(38.0)
    assert table.loc["pilot_a", "CPU hours"] == pytest.approx(3.0)
    assert table.loc["pilot_b", "best kNN accuracy (%)"] == pytest.approx(40.0)
    assert table.loc["pilot_b", "at epoch"] == 10 and table.loc["pilot_b", "crop floor"] == 0.2
    curves = ch07.probe_curves(pre)
    assert len(curves) == 5 and curves.groupby("pretraining")["CPU hours"].max()["pilot_a"] == pytest.approx(3.0)
    values = ch07.pretraining_values(pre)
    assert values["n_pretrainings"] == 2 and values["n_pretrainings_planned"] == 2
    assert values["best_pretraining"] == ("The best recorded so far is pilot_b, at 40.0 % validation kNN accuracy "
                                          "after 1.0 CPU hours (10 epochs).")
    empty = _pre([])
    assert list(ch07.pretraining_table(empty)["recorded"]) == ["not recorded yet"] * 2
    assert ch07.pretraining_values(empty)["best_pretraining"] == "No pretraining is recorded yet."
    assert ch07.probe_curves(empty).empty


@pytest.mark.parametrize("lead, said", [(1.2, "passes"), (0.8, "fails")])
def test_the_gate_reads_the_mean_paired_validation_difference_against_1_point(lead, said):
    # seeds 0 and 1 are the fine-tuning settings' (a lead of 5 points there); the gate reads seeds 2-4
    scratch = [60.0, 60.5, 60.0, 61.0, 59.5]
    pretrained = [65.0, 65.5] + [v + lead + d for v, d in zip(scratch[2:], (0.1, -0.1, 0.0))]
    rows = _runs(PRIMARY["variant"], "supervised", [70.0] * 5, scratch) \
        + _runs(ch07.VARIANT, "supervised", [50.0] * 5, pretrained)
    values, frame = ch07.gate(pd.DataFrame(rows))
    assert frame["seed"].tolist() == [2, 3, 4] and values["gate_n"] == 3
    assert values["gate_verdict"].startswith(f"the pretrained start {said} the gate ({lead:+.2f} points")
    # test accuracy never enters the gate
    assert frame["difference"].mean() == pytest.approx(lead)
    # and the tuning seeds alone do not make a gate
    values, _ = ch07.gate(pd.DataFrame([r for r in rows if r["seed"] < 2]))
    assert values["gate_verdict"] == "not measured yet (0 of 3 paired seeds recorded)"


def test_the_gate_before_its_runs_says_it_is_not_measured():
    values, frame = ch07.gate(pd.DataFrame(_runs(PRIMARY["variant"], "supervised", [70.0] * 3)))
    assert frame.empty and values["gate_verdict"] == "not measured yet (0 of 3 paired seeds recorded)"


def test_what_changed_sets_each_pretrained_verdict_beside_the_one_from_scratch():
    scratch = {"supervised": [70.0, 70.0, 70.0, 70.0], "FixMatch": [71.0, 71.2, 70.9, 71.1],
               "DTA+SNL": [71.6, 71.9, 71.7, 71.8], "FlexMatch": [71.0] * 4, "DTA": [71.5] * 4}
    rows = [r for m, v in scratch.items() for r in _runs(PRIMARY["variant"], m, v)]
    sentence, frame = ch07.changed(_pre(rows))
    assert sentence.startswith("No comparison on the pretrained start has its runs yet")
    assert ch07.bottom_line(_pre(rows)) == ("No comparison on the pretrained start has its runs yet, so nothing can "
                                            "be said yet about what pretraining changes.")
    assert list(frame["pretrained"]) == ["not recorded yet: no claim"] * 3
    assert frame["from scratch"][0].startswith("DTA+SNL scores higher")
    # pretrained: FixMatch's gain over supervised stays, DTA+SNL's lead over FixMatch is gone
    pre = {"supervised": [80.0, 80.1, 79.9, 80.0], "FixMatch": [81.0, 81.2, 80.9, 81.1],
           "DTA+SNL": [81.0, 81.3, 80.8, 81.1]}
    rows += [r for m, v in pre.items() for r in _runs(ch07.VARIANT, m, v)]
    sentence, frame = ch07.changed(_pre(rows))
    assert sentence.startswith("Of the 3 comparisons measured on the pretrained start, ")
    assert "change it: DTA+SNL − FixMatch" in sentence
    assert frame.set_index("comparison").loc["DTA+SNL − FixMatch", "pretrained"].startswith("no difference")
    # the landing page's bottom line: the pretrained family's verdicts, then what changed
    line = ch07.bottom_line(_pre(rows))
    assert line.startswith("On FERPlus, 10 % labeled, BYOL-pretrained, read family-wise (Holm at 0.05, margin 1 point): ")
    assert line.endswith(sentence) and "DTA+SNL − FixMatch" in line
    found = ch07.readings(_pre(rows))
    assert list(found) == ["primary", ch07.FAMILY, ch07.INTERACTIONS]
    # the families read once and handed on say what reading them again says
    assert ch07.changed(_pre(rows), found, False)[0] == sentence
    assert ch07.bottom_line(_pre(rows), found, False) == line
    values = ch07.family_values(found)
    assert values["pt_snl_fix_n"] == 4 and values["ix_snl_fix_n"] == 4
    assert values["ix_snl_fix_fw"].startswith("(DTA+SNL − FixMatch) from scratch is larger")


@pytest.mark.parametrize("lead", [0.4, 1.3])
def test_a_failed_gate_says_the_family_was_not_run_and_why_and_a_passed_one_that_it_waits(lead):
    scratch = {"supervised": [70.0] * 5, "FixMatch": [71.0, 71.2, 70.9, 71.1, 71.0],
               "DTA+SNL": [71.6, 71.9, 71.7, 71.8, 71.6]}
    rows = [r for m, v in scratch.items() for r in _runs(PRIMARY["variant"], m, v)]
    rows += _runs(ch07.VARIANT, "supervised", [50.0] * 5, [70.0 + lead] * 5)
    pre = _pre(rows)
    failed = lead < ch07.GATE_POINTS
    assert ch07.gate_failed(pre.rec.every) is failed
    sentence, frame = ch07.changed(pre)
    values = ch07.family_values(ch07.readings(pre), failed=ch07.gate_failed(pre.rec.every))
    if failed:
        assert sentence.startswith("The pretrained start failed the gate, so the planned family on it was not run")
        assert list(frame["pretrained"]) == [ch07.NOT_RUN] * 3
        assert ch07.bottom_line(pre) == sentence        # the landing page says the same
        assert values["pt_snl_fix_fw"] == values["ix_fix_sup_fw"] == ch07.NOT_RUN
    else:
        # supervised from the pretrained start is the gate's; FixMatch and DTA+SNL have yet to run
        assert sentence.startswith("No comparison on the pretrained start has its runs yet")
        assert values["pt_snl_fix_fw"] == "not recorded yet: no claim"
    # `ssfer results family` says the same under its tables
    line = ch07.gate_line(pre.rec)
    assert ("So their comparisons without runs are not run" in line) is failed
    assert f"({lead:+.2f} points" in line and ("passes" in line) is not failed
    # supervised alone, pretrained: the comparisons it enters still lack their other side
    assert values["pt_fix_sup_n"] == 0
    assert not ch07.gate_failed(pd.DataFrame(rows[:15]))   # no pretrained run: not measured, not failed
    pre.rec.families = [f for f in pre.rec.families if f.name not in ch07.FAMILY_KEYS]
    assert ch07.gate_line(pre.rec) is None     # a grid without the pretrained families has no gate to say


def test_a_verdict_short_of_its_planned_seeds_reads_as_interim_beside_the_other():
    scratch = {"supervised": [70.0] * 4, "FixMatch": [71.0, 71.2, 70.9, 71.1], "DTA+SNL": [71.6, 71.9, 71.7, 71.8]}
    rows = [r for m, v in scratch.items() for r in _runs(PRIMARY["variant"], m, v)]
    pre = _pre(rows)
    # the grid plans six seeds of FixMatch and DTA+SNL from scratch, four of supervised
    pre.rec.planned_keys = pd.DataFrame([{**PRIMARY, "run": f"{m}_s{s}", "method": m, "seed": s}
                                         for m in scratch for s in range(6 if m != "supervised" else 4)])
    _, frame = ch07.changed(pre)
    row = frame.set_index("comparison")
    assert row.loc["DTA+SNL − FixMatch", "from scratch"].endswith(" (interim: 4 of 6 planned seeds)")
    assert "interim" not in row.loc["FixMatch − supervised", "from scratch"]


def test_the_fine_tuning_setting_is_chosen_on_validation_once_every_setting_has_its_seeds():
    from ssfer.book.recording import Planned

    settings = {"lr 0.003, backbone x1": [60.0, 61.0], "lr 0.001, backbone x0.1": [62.0, 62.5],
                "lr 0.001, backbone x1": [61.0, 60.0]}
    rows = []
    for setting, val in settings.items():
        # test accuracy runs the other way: it must not enter the choice
        rows += _runs(ch07.TUNING + setting, "supervised", [80.0 - v for v in val], val)
    planned = [Planned(f"t{i}", "c.yaml", variant=ch07.TUNING + s) for i, s in enumerate(settings)]
    values, frame = ch07.tuning(pd.DataFrame(rows), planned)
    assert list(frame["setting"]) == ["lr 0.001, backbone x0.1", "lr 0.003, backbone x1", "lr 0.001, backbone x1"]
    assert values["tuning_choice"] == ("lr 0.001, backbone x0.1, at 62.25 % mean validation accuracy over seeds 0 "
                                       "and 1 (the next, lr 0.003, backbone x1: 60.50 %)")
    # one setting still without its seed 1: no choice yet, and a setting only planned counts
    late = [r for r in rows if not (r["variant"].endswith("backbone x1") and r["seed"] == 1
                                    and "0.001" in r["variant"])]
    extra = planned + [Planned("t9", "c.yaml", variant=ch07.TUNING + "lr 0.0003, backbone x1")]
    values, frame = ch07.tuning(pd.DataFrame(late), extra)
    assert values["tuning_choice"] == "none yet (2 of 4 settings have their runs at seeds 0 and 1)"
    assert frame["seeds"].tolist()[-1] == 0 and values["n_tuning_settings"] == 4
    assert ch07.tuning(pd.DataFrame(late).iloc[:0])[0]["tuning_choice"] == \
        "none yet (the grid names no setting to try yet)"


def test_once_the_setting_is_chosen_status_gives_the_gate_group_to_name_before_it_runs(tmp_path):
    import yaml

    from ssfer.book.recording import Planned, read_grid

    sets = {"lr 0.003": {"train.lr": 0.003, "train.backbone_lr_scale": 1.0},
            "lr 0.001": {"train.lr": 0.001, "train.backbone_lr_scale": 0.1}}
    planned = [Planned(f"t_{i}_s{s}", "configs/ferplus_fraction_10_cpu.yaml",
                       {"algo.name": "supervised", "split.seed": s, "train.seed": s, "train.label_smoothing": 0.0,
                        **o}, variant=ch07.TUNING + v, pretraining="final")
               for i, (v, o) in enumerate(sets.items()) for s in ch07.TUNING_SEEDS]
    rows = _runs(ch07.TUNING + "lr 0.003", "supervised", [70.0] * 2, [61.0, 60.0]) \
        + _runs(ch07.TUNING + "lr 0.001", "supervised", [70.0] * 2, [62.0, 61.0])
    assert ch07.gate_group(pd.DataFrame(rows[:3]), planned) is None      # one setting still short of a seed
    group = ch07.gate_group(pd.DataFrame(rows), planned)
    item = yaml.safe_load(group)[0]
    assert item == {"name": "ferplus_fraction_10_ls0_byolpt_{algorithm}_s{seed}", "variant": ch07.VARIANT,
                    "config": "configs/ferplus_fraction_10_cpu.yaml", "pretraining": "final",
                    "set": {"train.label_smoothing": 0.0, "train.lr": 0.001, "train.backbone_lr_scale": 0.1},
                    "algorithms": ["supervised"], "seeds": list(ch07.GATE_SEEDS)}
    # it reads back as the gate's three runs, and once the grid names them it is not offered again
    grid = tmp_path / "grid.yaml"
    grid.write_text("groups:\n" + group + "\npretrainings:\n  - name: final\n"
                    "    config: configs/ferplus_pretrain_cpu.yaml\n", encoding="utf-8")
    (tmp_path / "configs").mkdir()
    for name in ("ferplus_fraction_10_cpu.yaml", "ferplus_pretrain_cpu.yaml"):
        (tmp_path / "configs" / name).write_text((REPO / "configs" / name).read_text(encoding="utf-8"),
                                                 encoding="utf-8")
    gate_runs, _ = read_grid(grid)
    assert [p.name for p in gate_runs] == [f"ferplus_fraction_10_ls0_byolpt_supervised_s{s}" for s in ch07.GATE_SEEDS]
    assert gate_runs[0].overrides["train.lr"] == 0.001 and gate_runs[0].variant == ch07.VARIANT
    assert ch07.gate_group(pd.DataFrame(rows), planned + gate_runs) is None
    # the family's groups wait for the gate, and come only if it passes
    scratch = _runs(PRIMARY["variant"], "supervised", [70.0] * 5, [60.0] * 5)
    assert ch07.family_groups(pd.DataFrame(rows + scratch), planned + gate_runs) is None
    for lead, offered in ((0.9, False), (1.1, True)):
        gate = [r for r in _runs(ch07.VARIANT, "supervised", [70.0] * 5, [60.0 + lead] * 5) if r["seed"] >= 2]
        said = ch07.family_groups(pd.DataFrame(rows + scratch + gate), planned + gate_runs)
        assert (said is not None) is offered
    items = yaml.safe_load(said)
    assert [(i["algorithms"], i["seeds"]) for i in items] == [(["supervised"], [0, 1, 5, 6, 7, 8, 9]),
                                                              (["fixmatch", "dta_snl"], list(range(10)))]
    assert all(i["set"] == item["set"] and i["variant"] == ch07.VARIANT for i in items)
    grid.write_text("groups:\n" + group + "\n" + said + "\npretrainings:\n  - name: final\n"
                    "    config: configs/ferplus_pretrain_cpu.yaml\n", encoding="utf-8")
    family, _ = read_grid(grid)
    assert len(family) == 30
    assert ch07.family_groups(pd.DataFrame(rows + scratch + gate), planned + family) is None


def test_the_pilot_rule_takes_the_higher_pilot_and_buys_epochs_while_its_curve_still_rises():
    # pilot_a ends higher (40 %) and rose 4 points over its last 10 epochs: 8 CPU hours
    # at 150 s an epoch buy 192 epochs, 190 in whole probe intervals of 5
    pilots = {"pilot_a": _record([0.30, 0.36, 0.38, 0.40], 150.0),
              "pilot_b": _record([0.31, 0.35, 0.37, 0.39], 100.0, crop=0.2)}
    c = pretraining_grid.pilot_choice(pilots)
    assert (c.pilot, c.crop_floor, c.epochs, c.rose) == ("pilot_a", 0.4, 190, True)
    assert c.rise == pytest.approx(4.0) and c.cpu_seconds_per_epoch == pytest.approx(150.0)
    said = ch07.pilot_values(_pre([], pilots))["pilot_rule"]
    assert said == ("By the rule, the final pretraining takes crop floor 0.4 from pilot_a, whose pilot ended at "
                    "40.0 % validation kNN accuracy (pilot_b: 39.0 %); its curve rose +4.00 points over its last "
                    "10 epochs, so 190 epochs, what 8 CPU hours buy at its 150 CPU seconds an epoch. "
                    "The grid names no final pretraining yet.")


def test_the_pilot_rule_doubles_the_best_probe_epoch_once_the_curve_has_flattened():
    # pilot_b wins; over its last 10 epochs it moved -0.1 points, its best probe was at epoch 15
    pilots = {"pilot_a": _record([0.30, 0.36, 0.38, 0.40, 0.41], 150.0),
              "pilot_b": _record([0.30, 0.41, 0.425, 0.40, 0.424], 150.0, crop=0.2)}
    c = pretraining_grid.pilot_choice(pilots)
    assert (c.pilot, c.crop_floor, c.rose, c.best_epoch, c.epochs) == ("pilot_b", 0.2, False, 15, 30)
    # a rise of exactly 0.5 points counts as still rising; a tie in final accuracy goes to the first pilot
    edge = {"pilot_a": _record([0.355, 0.358, 0.360], 360.0), "pilot_b": _record([0.30, 0.33, 0.36], 360.0, 0.2)}
    c = pretraining_grid.pilot_choice(edge)
    assert (c.pilot, c.rose, c.epochs) == ("pilot_a", True, 80)


def test_the_pilot_rule_waits_for_every_pilot_and_checks_the_final_pretraining_the_grid_names():
    a, b = _record([0.30, 0.36, 0.38, 0.40], 150.0), _record([0.31, 0.35, 0.37, 0.39], 100.0, crop=0.2)
    assert ch07.pilot_values(_pre([], {"pilot_a": a}))["pilot_rule"] == \
        "The rule is read once every pilot is recorded (1 of 2 so far)."
    right = {"final": {"views.crop_scale": [0.4, 1.0], "train.epochs": 190}}
    wrong = {"final": {"views.crop_scale": [0.2, 1.0], "train.epochs": 190}}
    assert ch07.pilot_values(_pre([], {"pilot_a": a, "pilot_b": b}, right))["pilot_rule"].endswith(
        "The grid names final: crop floor 0.4, 190 epochs, as the rule gives.")
    assert ch07.pilot_values(_pre([], {"pilot_a": a, "pilot_b": b}, wrong))["pilot_rule"].endswith(
        "The grid names final: crop floor 0.2, 190 epochs, which is not what the rule gives.")
    # a pilot too short to read its last 10 epochs is named, not guessed at
    short = {"pilot_a": _record([0.30, 0.40], 150.0), "pilot_b": _record([0.30, 0.35], 150.0, 0.2)}
    assert ch07.pilot_values(_pre([], short))["pilot_rule"] == (
        "The rule cannot be read: pretraining pilot_a has no probe 10 epochs before its last (10): the rule "
        "cannot say whether its curve still rose.")
