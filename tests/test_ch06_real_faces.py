"""What chapter 06 reads off the recorded runs (ssfer.book.ch06_real_faces): each section's
values for the prose and its table, from synthetic tables with known answers and
from the committed results/ themselves."""
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ssfer.book import (  # noqa: E402
    ch06_families as family_wise,
    ch06_real_faces as ch06,
    ch07_pretrained as ch07,
    figures,
    grid_tables,
    recording,
    verdicts,
)
from ssfer.config import ConfigError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PRIMARY = dict(grid_tables.PRIMARY)


def _prim(diffs: dict[str, list[float]], base: float = 70.0) -> pd.DataFrame:
    """A primary-grid table: supervised scores ``base`` at every seed, each other
    method ``base`` plus its per-seed differences."""
    n = len(next(iter(diffs.values())))
    rows = [{**PRIMARY, "run": f"supervised_s{s}", "method": "supervised", "seed": s, "accuracy (%)": base}
            for s in range(n)]
    rows += [{**PRIMARY, "run": f"{m}_s{s}", "method": m, "seed": s, "accuracy (%)": base + d}
             for m, ds in diffs.items() for s, d in enumerate(ds)]
    return pd.DataFrame(rows)


def test_the_family_before_any_run_says_so_and_shows_no_table():
    empty = pd.DataFrame(columns=["run", "method", "seed", "accuracy (%)", *PRIMARY])
    values, shown = ch06.family(empty, "accuracy (%)", "pf")
    assert shown is None
    assert len(values) == 7 * len(grid_tables.PLANNED)  # six comparison values and a margin reading each
    assert {values[f"pf_{k}_margin"] for k in ch06.PLANNED_KEYS.values()} == {"not recorded yet: no claim"}
    assert values["pf_snl_fix_verdict"] == "not recorded yet: no claim" and values["pf_snl_fix_n"] == 0


def test_the_family_reads_each_recorded_comparison_against_the_margin():
    prim = _prim({"FixMatch": [2.0, 2.1, 1.9, 2.0], "FlexMatch": [0.0, 0.1, -0.1, 0.0],
                  "DTA": [0.1, 0.0, 0.1, -0.1], "DTA+SNL": [2.1, 2.0, 2.0, 2.1]})
    values, shown = ch06.family(prim, "accuracy (%)", "pf")
    assert list(shown["comparison"]) == [f"{a} − {b}" for a, b in grid_tables.PLANNED]
    # DTA+SNL - FixMatch: differences 0.1, -0.1, 0.1, 0.1, well inside one point
    assert values["pf_snl_fix_margin"] == verdicts.compare(prim, "DTA+SNL", "FixMatch", "accuracy (%)").margin_verdict()
    assert "rule out" in values["pf_snl_fix_margin"]
    # FixMatch - supervised: about +2 at every seed, so the interval excludes 0
    assert "FixMatch scores higher" in values["pf_fix_sup_margin"]
    assert values["pf_fix_sup_mean"] == "+2.0" and values["pf_fix_sup_n"] == 4
    assert list(shown["against the margin"]) == [values[f"pf_{k}_margin"] for k in ch06.PLANNED_KEYS.values()]
    line = ch06.bottom_line(prim)
    assert line.startswith("Of the 5 planned comparisons, ") and "FixMatch higher in FixMatch − supervised" in line


def _rec(histories: dict[str, list[dict]], rows: list[dict]) -> ch06.Recorded:
    records = {name: SimpleNamespace(history=h) for name, h in histories.items()}
    return ch06.Recorded(records, [], pd.DataFrame(rows))


def test_the_controls_reading_gives_each_move_with_its_seeds_or_says_none_is_recorded():
    prim = _prim({"FixMatch": [2.0, 2.1, 1.9], "FlexMatch": [0.0, 0.1, -0.1]}).assign(**{"mean class accuracy (%)": 60.0})
    student = prim[prim["method"].isin(["FixMatch", "FlexMatch"])].assign(
        variant="student pseudo labels", run=lambda d: "student_" + d["run"])
    student.loc[student["method"] == "FixMatch", "accuracy (%)"] -= [1.0, 1.2, 0.9]   # a clear drop
    student = student[~((student["method"] == "FlexMatch") & (student["seed"] > 0))]  # FlexMatch: one seed
    values = ch06.control_values(pd.concat([prim, student], ignore_index=True))
    assert values["n_student"] == 4 and values["n_balanced"] == 0
    text = values["controls_reading"]
    assert text.startswith("With student pseudo labels, FixMatch moves by -1.0 [-1.4, -0.7] over 3 paired seeds "
                           "(the primary grid scores higher; the runs cannot tell whether by 1 point or more); "
                           "FlexMatch moves by +0.0 at one seed (no claim).")
    assert text.endswith("With balanced labeled batches: not recorded yet.")
    balanced = prim[prim["method"] == "FixMatch"].assign(variant="balanced labeled batches",
                                                          run=lambda d: "balanced_" + d["run"])
    text = ch06.control_values(pd.concat([prim, balanced], ignore_index=True))["controls_reading"]
    assert text.endswith("With balanced labeled batches, FixMatch moves by +0.0 [+0.0, +0.0] over 3 paired seeds "
                         "(the runs rule out a difference of 1 point or more); DTA+SNL not recorded yet; on mean "
                         "class accuracy, FixMatch moves by +0.0 [+0.0, +0.0] over 3 paired seeds (the runs rule out "
                         "a difference of 1 point or more); on mean class accuracy, DTA+SNL not recorded yet.")


def test_the_controls_table_moves_each_method_on_accuracy_and_rare_recall_with_verdicts_only_where_faces_suffice():
    prim = _prim({"FixMatch": [2.0, 2.1, 1.9], "DTA+SNL": [3.0, 3.0, 3.0]}).assign(**{"mean class accuracy (%)": 60.0})
    balanced = prim[prim["method"] == "FixMatch"].assign(variant="balanced labeled batches",
                                                          run=lambda d: "balanced_" + d["run"])
    balanced["mean class accuracy (%)"] += [4.0, 5.0, 6.0]    # balanced batches lift mean class accuracy
    every = pd.concat([prim, balanced], ignore_index=True)
    faces = {"fear": 60, "disgust": 12, "contempt": 10, "happiness": 900}
    recall = {"fear": 40.0, "disgust": 20.0, "contempt": 10.0, "happiness": 90.0}
    classes = pd.DataFrame([{"run": r.run, "method": r.method, "seed": r.seed, "variant": r.variant, "class": c,
                             "recall (%)": recall[c] + (10.0 + r.seed if r.run.startswith("balanced") else 0.0),
                             "test faces": n} for r in every.itertuples() for c, n in faces.items()])
    table = ch06.control_classes(every, classes)
    # only the balanced control has runs, only for FixMatch: five measures
    assert set(table["control"]) == {"balanced labeled batches"} and set(table["method"]) == {"FixMatch"}
    assert list(table["measure"]) == ["accuracy", "mean class accuracy", "fear recall", "disgust recall",
                                      "contempt recall"]
    row = table.set_index("measure")
    assert list(row["test faces"]) == [982, 982, 60, 12, 10] and set(row["seeds"]) == {3}
    assert row.loc["accuracy", "verdict"] == "the runs rule out a difference of 1 point or more"
    assert row.loc["accuracy", "mean move"] == 0
    assert row.loc["mean class accuracy", "mean move"] == pytest.approx(5.0)
    assert row.loc["mean class accuracy", "verdict"] == "balanced labeled batches scores higher, by 1 point or more"
    assert row.loc["fear recall", "mean move"] == pytest.approx(11.0)
    assert row.loc["fear recall", "verdict"] == "balanced labeled batches scores higher, by 1 point or more"
    # recall on 10 or 12 test faces moves in steps of 8-10 points: interval, no verdict
    assert row.loc["contempt recall", "verdict"] == "too few test faces (10): no claim"
    assert row.loc["disgust recall", "95 % interval"] == verdicts.interval(
        verdicts.compare(classes[classes["class"] == "disgust"].query("method == 'FixMatch'"),
                       "balanced labeled batches", ch06.CONTROL, "recall (%)", by="variant").paired)
    worse = every.assign(**{"accuracy (%)": every["accuracy (%)"] - every["run"].str.startswith("balanced") * 2.0})
    assert ch06.control_classes(worse, classes).set_index("measure").loc["accuracy", "verdict"] == \
        "the primary grid scores higher, by 1 point or more"
    assert ch06.control_classes(prim, classes[classes["variant"] == ch06.CONTROL]).empty
    assert ch06.recall_reading(table) == (
        "On fear recall (60 test faces), with balanced labeled batches, FixMatch moves by +11.0 [+8.5, +13.5] "
        "over 3 paired seeds (balanced labeled batches scores higher, by 1 point or more).")
    assert ch06.recall_reading(table, min_faces=100).startswith("No rare class has 100 test faces or more")
    assert ch06.recall_reading(table.iloc[:0]) == "No control has a run yet."
    # inside the control: DTA+SNL - FixMatch there, and on the primary grid at the same seeds
    snl = prim[prim["method"] == "DTA+SNL"].assign(variant="balanced labeled batches",
                                                    run=lambda d: "balanced_" + d["run"])
    snl = snl[snl["seed"] < 2]
    every = pd.concat([every, snl], ignore_index=True)
    classes = pd.concat([classes, classes[classes["run"].isin(snl["run"].str.removeprefix("balanced_"))].assign(
        run=lambda d: "balanced_" + d["run"], variant="balanced labeled batches", method="DTA+SNL")])
    inside = ch06.within_control(every, classes, "balanced labeled batches", "DTA+SNL", "FixMatch")
    assert list(inside["setting"].unique()) == ["balanced labeled batches", "the primary grid, same seeds"]
    assert set(inside["seeds"]) == {2}    # only seeds 0 and 1 have both methods under the control
    acc = inside[inside["measure"] == "accuracy"].set_index("setting")["DTA+SNL − FixMatch"]
    assert acc.tolist() == pytest.approx([0.95, 0.95])    # mean of 3.0 - 2.0 and 3.0 - 2.1 (seeds 0, 1), in both
    assert ch06.within_reading(inside).startswith(
        "DTA+SNL − FixMatch on accuracy, balanced labeled batches: +1.0 [+0.3, +1.6] over 2 paired seeds "
        "(2 seeds: no claim); the primary grid, same seeds: +1.0")
    none = ch06.within_control(prim, classes, "balanced labeled batches", "DTA+SNL", "FixMatch")
    assert none.empty and ch06.within_reading(none).startswith("Not recorded yet")


def test_acceptance_averages_each_run_over_training_then_the_seeds():
    hist = {"fix0": [{"step": 1, "mask_rate": 0.1}, {"step": 2, "mask_rate": 0.3}],   # run mean 20 %
            "fix1": [{"step": 1, "mask_rate": 0.6}],                                 # run mean 60 %
            "sup0": [{"step": 1}]}
    rows = [{"run": "fix0", "method": "FixMatch", "seed": 0}, {"run": "fix1", "method": "FixMatch", "seed": 1},
            {"run": "sup0", "method": "supervised", "seed": 0}]
    rec = _rec(hist, rows)
    rates = ch06.acceptance(rec, rec.every)
    assert set(rates["method"]) == {"FixMatch"} and len(rates) == 3  # supervised runs have no pseudo labels
    values = ch06.acceptance_values(rates, "accept")
    assert values["accept_fix"] == "40.0"        # (20 + 60) / 2, not the mean of the three rows (33.3)
    assert values["accept_dta"] == "—"           # no DTA run
    assert ch06.acceptance_values(rates.iloc[:0], "none") == {f"none_{k}": "—" for k, _ in ch06.ACCEPT_KEYS}


def test_recompute_names_the_parameter_it_needs():
    rec = _rec({"a": []}, [{"run": "a", "method": "FixMatch", "seed": 0}])
    with pytest.raises(ValueError, match="parameter 'runs': recompute=True needs the names"):
        ch06.recompute(rec, [], {})
    with pytest.raises(ValueError, match=r"parameter 'runs': no recorded run \['b'\]"):
        ch06.recompute(rec, ["b"], {})


def test_the_grid_root_is_found_from_the_grid_file_wherever_the_chapter_runs(tmp_path):
    planned = recording.load_grid(REPO / "results" / "grid.yaml")
    assert recording.grid_root(REPO / "results" / "grid.yaml", planned) == REPO
    # as the nbval re-run lays it out: results/ linked into a folder that has no configs/
    (tmp_path / "results").symlink_to(REPO / "results", target_is_directory=True)
    assert recording.grid_root(tmp_path / "results" / "grid.yaml", planned) == REPO
    (tmp_path / "g.yaml").write_text((REPO / "results" / "grid.yaml").read_text())
    with pytest.raises(ConfigError, match="g.yaml: no folder above it holds the configs it names"):
        recording.grid_root(tmp_path / "g.yaml", planned)


@pytest.fixture(scope="module")
def committed() -> ch06.Recorded:
    """The committed results/ and grid, loaded once for the tests that read them."""
    return ch06.load(REPO / "results", REPO / "results" / "grid.yaml")


def test_on_the_committed_results_every_cited_value_is_there(committed):
    rec = committed
    assert len(rec.records) > 0 and set(rec.missing) == {p.name for p in rec.planned} - set(rec.records)
    values, frame = ch06.plan(rec)
    # the primary grid's planned runs are found from their configs, not their names
    primary = [p.name for p in rec.planned if p.variant == ch06.CONTROL and p.name.startswith("ferplus_fraction_10_")]
    assert values["n_primary_planned"] == len(primary) == 5 * 10 + 2 * 10
    assert [p.name for p in rec.primary_planned] == primary
    assert values["n_primary_planned"] == ch06.profile_control(rec)[0]["n_control_planned"]
    assert list(frame["comparison"]) == [f"{a} − {b}" for a, b in grid_tables.PLANNED]
    values, paired = ch06.paired_table(rec.profile)
    for key, *_ in ch06.PROFILE_PAIRS:
        assert {f"{key}_{k}" for k in ("mean", "low", "high", "wins", "n", "verdict")} <= set(values)
    assert values["n_intervals"] == (~paired["verdict"].str.endswith("no claim")).sum()
    values, summary = ch06.scores(rec)
    removed, of = values["leak_ferplus"].split(" of ")   # FERPlus test faces with a copy in train
    assert 0 < int(removed) < int(of)
    assert len(summary) == len(rec.profile.groupby(["data set", "budget", "method"]))
    smoothing = ch06.smoothing_values(rec)
    assert smoothing["ls"] == "0.1" and smoothing["ls_target"] == "0.9125"   # 1 - 0.1 + 0.1 / 8
    moves = ch06.control_classes(rec.every, grid_tables.class_table(rec.records, rec.planned))
    controls = {v for _, v, _, _ in ch06.CONTROL_PAIRS}
    recorded = {(v, m) for v, m in zip(rec.every["variant"], rec.every["method"]) if v in controls}
    assert set(zip(moves["control"], moves["method"])) == recorded
    assert (moves.groupby(["control", "method"]).size() == 2 + len(ch06.RARE)).all()


def test_seed_provenance_counts_the_seeds_run_on_one_known_cpu_kind():
    runs = [("a0", "supervised", 0, "AVX2"), ("b0", "FixMatch", 0, "AVX2"),
            ("a1", "supervised", 1, "AVX2"), ("b1", "FixMatch", 1, "AVX512"),
            ("a2", "supervised", 2, None)]
    records = {name: SimpleNamespace(environment={"code_fingerprint": "c0ffee00", "git_commit": "abc",
                                                  "cpu_threads": 1, **({"cpu_capability": cpu, "cpu_model": "X"}
                                                                       if cpu else {})})
               for name, _, _, cpu in runs}
    every = pd.DataFrame([{**PRIMARY, "run": n, "method": m, "seed": s} for n, m, s, _ in runs])
    values, frame = ch06.seed_provenance(ch06.Recorded(records, [], every))
    assert list(frame["CPU kinds"]) == ["AVX2, X", "AVX2, X; AVX512, X", "not recorded"]
    assert values == {"n_seeds_recorded": 3, "n_seeds_one_kind": 1}   # seed 1 mixes kinds, seed 2 is unknown


def test_replays_say_which_runs_trained_again_bit_for_bit_and_where():
    side = {"recorded CPU kind": "not recorded", "recorded code": "c3a634a8",
            "replayed CPU kind": "AVX512, X", "replayed code": "702d27b8"}
    logged = [{"run": "r0", "steps": 500, "identical": True, "first difference at step": None, **side},
              {"run": "r1", "steps": 500, "identical": False, "first difference at step": 25, **side},
              {"run": "r2", "steps": 500, "identical": False, "first difference at step": None, **side}]
    values, frame = ch06.replays(ch06.Recorded({}, [], pd.DataFrame(), replays=logged))
    assert values == {"n_replays": 3, "n_replays_identical": 1}
    assert list(frame["outcome"]) == ["bit for bit", "differs from step 25", "differs in its number of logged rows"]
    assert set(frame["recorded on"]) == {"not recorded, code c3a634a8"}
    assert set(frame["replayed on"]) == {"AVX512, X, code 702d27b8"}
    values, frame = ch06.replays(ch06.Recorded({}, [], pd.DataFrame()))
    assert values == {"n_replays": 0, "n_replays_identical": 0} and frame.empty


def test_the_family_report_prints_each_family_with_holm_and_the_training_time(monkeypatch, capsys):
    prim = _prim({"FixMatch": [2.0, 2.1, 1.9], "FlexMatch": [0.0, 0.1, -0.1],
                  "DTA": [0.1, 0.0, 0.1], "DTA+SNL": [2.1, 2.0, 3.5]})
    records = {r: SimpleNamespace(summary={"train_seconds": 100.0}) for r in prim["run"]}
    families = grid_tables.load_families(REPO / "results" / "grid.yaml")
    rec = ch06.Recorded(records, [], prim, families=families)
    text = ch06.family_report(rec)
    lines = text.splitlines()
    assert lines[0].endswith("accuracy (%), points; read family-wise with Holm at 0.05; margin 1 point")
    assert "primary (FERPlus, 10 % labeled, no label smoothing):" in lines
    frame = grid_tables.family_table(prim, families[0])
    for (a, b), (_, row) in zip(grid_tables.PLANNED, frame.iterrows()):
        c = verdicts.compare(prim, a, b, "accuracy (%)")
        line = next(line for line in lines if line.strip().startswith(f"{a} − {b} "))
        assert f"{c.paired.mean:+.2f}" in line and verdicts.interval(c.paired, "+.2f") in line
        assert verdicts.p_text(c.paired.p) in line and verdicts.p_text(row["Holm p"]) in line
        assert row["family-wise verdict"] in line and line.rstrip().endswith(c.margin_verdict())
    assert "15 runs recorded, 1,500 s of training (train_seconds)" in lines
    # the budgets' families have no runs here: each says so, row by row
    assert "the paper's claim (FERPlus, no label smoothing):" in lines
    # (issue 32's two families, the pretrained one and its interactions, have none either)
    assert text.count("not recorded yet: no claim") == 2 * (3 * 2 + 4 + 3 + 2)
    assert lines[-1] == ch06.bottom_line(prim)
    # the CLI prints the same text for the results it is pointed at
    monkeypatch.setattr(ch06, "load", lambda results_dir, grid: rec)
    from ssfer.cli import main
    assert main(["results", "family"]) == 0
    # and, below it, the gate the pretrained families wait on (chapter 07)
    assert capsys.readouterr().out.strip() == f"{text}\n{ch07.gate_line(rec)}"
    assert ch07.gate_line(rec).endswith("not measured yet (0 of 3 paired seeds recorded).")
    with pytest.raises(SystemExit):
        main(["results", "family", "--metric", "speed"])


def test_the_readme_opens_with_the_bottom_line_of_the_committed_results(committed):
    """README.md's headline block is what `ssfer results family --readme README.md`
    writes from results/: the recorder rewrites it with every run it commits."""
    rec = committed
    text = (REPO / "README.md").read_text(encoding="utf-8")
    line = family_wise.headline(family_wise.read_families(rec))
    assert family_wise.readme_with_headline(text, line) == text, (
        "README.md's bottom line is stale: run `ssfer results family --readme README.md`")


def test_the_headline_is_three_sentences_each_a_family_wise_verdict():
    prim = _prim({"FixMatch": [2.0, 2.1, 1.9, 2.0], "FlexMatch": [0.0, 0.1, -0.1, 0.0],
                  "DTA": [0.1, 0.0, 0.1, 0.2], "DTA+SNL": [2.1, 2.0, 3.5, 2.2]})
    rec = ch06.Recorded({}, [], prim, families=grid_tables.load_families(REPO / "results" / "grid.yaml"))
    line = family_wise.headline(family_wise.read_families(rec))
    assert line.count(". ") == 2 and line.endswith(".")
    for label in ("DTA+SNL − FixMatch", "DTA − FlexMatch", "DTA+SNL − DTA", "FixMatch − supervised",
                  "DTA+SNL − supervised"):
        assert label in line
    assert "Holm p" in line and "read family-wise" in line
    with pytest.raises(ConfigError, match="no headline block"):
        family_wise.readme_with_headline("# no block\n", line)


def test_a_comparison_short_of_its_planned_seeds_reads_as_interim_in_the_headline_and_the_report():
    prim = _prim({"FixMatch": [2.0, 2.1, 1.9, 2.0], "FlexMatch": [0.0, 0.1, -0.1, 0.0],
                  "DTA": [0.1, 0.0, 0.1, 0.2], "DTA+SNL": [2.1, 2.0, 3.5, 2.2]})
    # the grid plans 6 seeds of FixMatch and DTA+SNL, and the 4 recorded of the rest
    planned = pd.DataFrame([{**PRIMARY, "run": f"{m}_s{s}", "method": m, "seed": s}
                            for m in ("supervised", "FixMatch", "FlexMatch", "DTA", "DTA+SNL")
                            for s in range(6 if m in ("FixMatch", "DTA+SNL") else 4)])
    records = {r: SimpleNamespace(summary={"train_seconds": 1.0}) for r in prim["run"]}
    rec = ch06.Recorded(records, [], prim, families=grid_tables.load_families(REPO / "results" / "grid.yaml"),
                        planned_keys=planned)
    line = family_wise.headline(family_wise.read_families(rec))
    assert "4 of 6 planned seeds so far" in line and line.count("planned seeds") == 1
    assert "Holm p" in line and ", 4 seeds)" in line     # the complete comparisons say their seeds plainly
    last = ch06.family_report(rec).splitlines()[-1]
    assert last.startswith("Interim: ") and last.endswith(": DTA+SNL − FixMatch (primary: 4 of 6).")


def test_the_claim_sentence_says_matches_only_inside_the_margin():
    fam = next(f for f in grid_tables.load_families(REPO / "results" / "grid.yaml") if f.name == "the paper's claim")
    rows = [{**PRIMARY, "budget": "all labels", "run": f"all_s{s}", "method": "supervised", "seed": s,
             "accuracy (%)": 80.0 + 0.1 * s} for s in range(5)]
    for budget, lead in (("1 % labeled", -12.0), ("10 % labeled", 0.0), ("25 % labeled", 2.0)):
        rows += [{**PRIMARY, "budget": budget, "run": f"{budget}_s{s}", "method": "DTA+SNL", "seed": s,
                  "accuracy (%)": 80.0 + 0.1 * s + lead + d} for s, d in enumerate([0.1, -0.1, 0.05, -0.05, 0.0])]
    rec = ch06.Recorded({}, [], pd.DataFrame(rows), families=[fam])
    reading = family_wise.read_families(rec)[0]
    text = family_wise.claim_sentence(reading)
    assert text.startswith("DTA+SNL passes supervised training with every label at 25 % labeled")
    assert "it matches it, within 1 point, at 10 % labeled" in text
    assert "it falls short of it at 1 % labeled" in text and "5 % labeled is not recorded yet" in text
    # every budget recorded, three short of it: one list, and no "so far"
    short = rows[:5] + [{**PRIMARY, "budget": b, "run": f"{b}_s{s}", "method": "DTA+SNL", "seed": s,
                         "accuracy (%)": 70.0 + 0.1 * s + d}
                        for b in ("1 % labeled", "5 % labeled", "10 % labeled")
                        for s, d in enumerate([0.1, -0.1, 0.05, -0.05, 0.0])]
    short += [r for r in rows if r["budget"] == "25 % labeled"]
    text = family_wise.claim_sentence(family_wise.read_families(ch06.Recorded({}, [], pd.DataFrame(short),
                                                                              families=[fam]))[0])
    assert text == ("DTA+SNL passes supervised training with every label at 25 % labeled; it falls short of it at "
                    "1 %, 5 % and 10 % labeled.")
    text = family_wise.claim_sentence(family_wise.read_families(ch06.Recorded({}, [], pd.DataFrame(short[:-5]),
                                                                              families=[fam]))[0])
    assert text.startswith("At no budget recorded so far does DTA+SNL match or pass supervised training with every "
                           "label; it falls short of it at 1 %, 5 % and 10 % labeled; 25 % labeled is not recorded")
    empty = ch06.Recorded({}, [], pd.DataFrame(rows[:5]), families=[fam])
    assert family_wise.claim_sentence(family_wise.read_families(empty)[0]).startswith("No budget of the paper's claim has 3")


def test_the_lead_over_fixmatch_is_read_at_each_budget_in_its_own_family_smallest_budget_first():
    families = [f for f in grid_tables.load_families(REPO / "results" / "grid.yaml")
                if f.name in ("primary", "25 % labeled", "1 % labeled", "the paper's claim", "pretrained")]
    rows = []
    for budget, lead in (("1 % labeled", -3.0), ("10 % labeled", 0.0), ("25 % labeled", 2.0)):
        for s, d in enumerate([0.1, -0.1, 0.05, -0.05, 0.0]):
            rows += [{**PRIMARY, "budget": budget, "run": f"{budget}_{m}_s{s}", "method": m, "seed": s,
                      "accuracy (%)": 60.0 + s + (lead + d if m == "DTA+SNL" else 0.0)}
                     for m in ("supervised", "FixMatch", "DTA+SNL")]
    readings = family_wise.read_families(ch06.Recorded({}, [], pd.DataFrame(rows), families=families))
    text = family_wise.lead_by_budget(readings)
    # one clause per budget family that plans the comparison: not the claim's, nor the pretrained start's
    assert text.count("; at ") == 2 and "pretrained" not in text
    assert text.index("at 1 % labeled: FixMatch scores higher, by 1 point or more") \
        < text.index("at 10 % labeled: no difference family-wise; the runs rule out one of 1 point or more") \
        < text.index("at 25 % labeled: DTA+SNL scores higher, by 1 point or more")
    assert "(-3.00 points [" in text and ", 5 seeds)" in text
    assert family_wise.lead_by_budget(readings[:0]) == "No planned family of a label budget holds DTA+SNL − FixMatch."


def test_the_share_accepted_is_read_per_budget_fewest_labels_first_and_never_for_supervised():
    def run(name, budget, method, seed, rates):
        return {"run": name, "budget": budget, "method": method, "seed": seed, "mean class accuracy (%)": 50.0,
                "labeled (%)": float(budget.split(" ")[0])}, SimpleNamespace(history=[{"mask_rate": r} for r in rates])

    made = [run("f10", "10 % labeled", "FixMatch", 0, [0.2, 0.4]), run("f10b", "10 % labeled", "FixMatch", 1, [0.5]),
            run("d10", "10 % labeled", "DTA+SNL", 0, [0.6]), run("s10", "10 % labeled", "supervised", 0, []),
            run("f1", "1 % labeled", "FixMatch", 0, [0.9]), run("d1", "1 % labeled", "DTA+SNL", 0, [0.8])]
    rec = SimpleNamespace(records={r["run"]: record for r, record in made})
    fractions = family_wise.accepted_by_run(rec, pd.DataFrame([r for r, _ in made]))
    assert fractions[family_wise.ACCEPTED].isna().tolist() == [False, False, False, True, False, False]
    classes = family_wise.budget_classes(fractions, pd.DataFrame(columns=["class", "run", "method", "recall (%)", "test faces"]),
                                         fractions.iloc[:0])
    # each run's mean over its logged steps, then the mean over the seeds: FixMatch at 10 % is (30 + 50) / 2
    assert family_wise.acceptance_by_budget(classes) == (
        "Share of the unlabeled faces that passed the threshold over training (mean over the seeds): "
        "at 1 % labeled, FixMatch 90.0 % and DTA+SNL 80.0 %; at 10 % labeled, FixMatch 40.0 % and DTA+SNL 60.0 %.")
    assert family_wise.acceptance_by_budget(classes.drop(columns=family_wise.ACCEPTED)).startswith("No run")


def test_the_budget_grid_counts_its_own_runs_not_the_primary_grid_nor_other_variants():
    def row(run, budget, method, variant="no label smoothing", data="FERPlus"):
        return {"run": run, "data set": data, "budget": budget, "method": method, "seed": 0, "variant": variant}

    planned = pd.DataFrame([row("a1", "1 % labeled", "FixMatch"), row("a2", "1 % labeled", "DTA+SNL"),
                            row("c1", "all labels", "supervised"), row("c2", "all labels", "supervised"),
                            row("p1", "10 % labeled", "FixMatch"), row("s1", "1 % labeled", "FixMatch", "other"),
                            row("f1", "100 per class", "FixMatch", data="FER2013")])
    recorded = planned[planned["run"].isin(["a1", "c1", "p1", "s1", "f1"])]
    assert family_wise.budget_progress(recorded, planned) == {"n_budget_runs": 2, "n_budget_planned": 4,
                                                              "n_ceiling": 1}
    assert family_wise.budget_progress(recorded.iloc[:0], planned)["n_budget_runs"] == 0


def _budget_state(rec: ch06.Recorded, seeds: dict[str, range]) -> ch06.Recorded:
    """``rec`` with its runs at 1, 5 and 25 % replaced by runs made up from the
    10 % ones (the planned config, the accuracy moved by the budget): at each
    budget of ``seeds``, every planned method at those seeds."""
    shift = {"25": 2.5, "5": -4.0, "1": -12.0}
    records = {n: r for n, r in rec.records.items() if not n.startswith(("ferplus_fraction_1_", "ferplus_fraction_5_",
                                                                        "ferplus_fraction_25_"))}
    for p in rec.planned:
        parts = p.name.split("_")          # ferplus_fraction_25_ls0_dta_snl_s1
        if parts[:2] != ["ferplus", "fraction"] or parts[2] not in seeds or int(parts[-1][1:]) not in seeds[parts[2]]:
            continue
        template = rec.records[p.name.replace(f"_{parts[2]}_", "_10_")]
        summary = dict(template.summary, accuracy=template.summary["accuracy"] + shift[parts[2]] / 100)
        records[p.name] = dataclasses.replace(template, config=p.resolve(REPO, {}), summary=summary)
    every = grid_tables.results_table(records, rec.planned)
    return dataclasses.replace(rec, records=records, every=every)


@pytest.fixture(scope="module")
def committed_budget_glue(committed) -> set[str]:
    """The names the budget section glues on the committed results."""
    return set(family_wise.budget_section(committed, family_wise.read_families(committed)).values)


@pytest.mark.parametrize("seeds", [{}, {"25": range(2)}, {"25": range(5), "5": range(1)},
                                   {"25": range(5), "5": range(5), "1": range(3)}],
                         ids=["none", "25 % at 2 seeds", "5 % at 1 seed", "1 % at 3 seeds"])
def test_the_budget_section_reads_every_stage_of_its_grid_with_the_same_glue(committed, committed_budget_glue, seeds):
    """The grid fills over several sessions, a run committed as it finishes: at
    every stage the section must build, glue the same names and say no more than
    its seeds allow."""
    rec = _budget_state(committed, seeds)
    section = family_wise.budget_section(rec, family_wise.read_families(rec))
    assert set(section.values) == committed_budget_glue
    for budget, prefix in (("25", "b25"), ("5", "b5"), ("1", "b1")):
        n = len(seeds.get(budget, ()))
        assert section.values[f"{prefix}_snl_fix_n"] == n
        assert section.values[f"claim_{prefix}_n"] == n
        if n < verdicts.MIN_SEEDS:
            assert section.values[f"{prefix}_snl_fix_fw"].endswith("no claim")
        else:
            assert not section.values[f"{prefix}_snl_fix_fw"].endswith("no claim")
    assert sorted(section.fractions["budget"].unique()) == sorted(
        ["10 % labeled", *(f"{b} % labeled" for b, s in seeds.items() if len(s))])
    assert set(section.classes["budget"]) == {*section.fractions["budget"], "all labels"}
    missing = [f"{b} %" for b in ("1", "5", "25") if len(seeds.get(b, ())) < verdicts.MIN_SEEDS]
    claim = section.values["claim"]
    assert ("not recorded yet" in claim) == bool(missing)
    if missing:      # the family's order; one "labeled" for the list
        listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
        assert claim.split("; ")[-1].startswith(f"{listed} labeled {'is' if len(missing) == 1 else 'are'} not recorded")
    else:
        assert "so far" not in claim
    ax = figures.plot_label_efficiency(section.fractions, section.ceiling)
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        b for b in ("1", "5", "10", "25") if b == "10" or len(seeds.get(b, ()))]
    plt.close(ax.figure)
