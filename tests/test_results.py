"""Recording the real-data grid: planned runs, resumable recording, reading back."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ssfer.cli import main
from ssfer.config import ConfigError
from ssfer.book.recording import ARTIFACTS, load_grid, load_results, pending, record_grid

REPO = Path(__file__).resolve().parents[1]


def _grid(tmp_path, overrides) -> Path:
    shutil.copy(REPO / "configs" / "synthfer_dta_snl.yaml", tmp_path / "c.yaml")
    g = {"groups": [{"name": "synth_{algorithm}_s{seed}", "config": "c.yaml", "algorithms": ["supervised", "fixmatch"],
                     "seeds": [0, 1], "set": overrides}]}
    (tmp_path / "grid.yaml").write_text(json.dumps(g))
    return tmp_path / "grid.yaml"


def test_grid_expands_to_paired_runs_with_seeded_splits(tmp_path, two_step_overrides):
    grid = load_grid(_grid(tmp_path, two_step_overrides))
    assert [p.name for p in grid] == ["synth_supervised_s0", "synth_supervised_s1", "synth_fixmatch_s0",
                                      "synth_fixmatch_s1"]
    # methods at one seed share the labeled split: split seed = training seed
    assert all(p.overrides["split.seed"] == p.overrides["train.seed"] for p in grid)


def test_record_writes_the_five_files_and_never_retrains_a_recorded_run(tmp_path, monkeypatch, two_step_overrides):
    monkeypatch.chdir(tmp_path)
    grid = load_grid(_grid(tmp_path, two_step_overrides))
    out = record_grid(grid, tmp_path, tmp_path / "results", {}, only=["synth_*_s0"], cache_dir=str(tmp_path / "c"))
    assert out == {"synth_supervised_s0": "", "synth_fixmatch_s0": ""}
    for name in out:
        assert sorted(p.name for p in (tmp_path / "results" / name).iterdir()) == sorted(ARTIFACTS)
    cmd = (tmp_path / "results" / "synth_fixmatch_s0" / "command.txt").read_text()
    assert "ssfer train --config c.yaml --set algo.name=fixmatch --set split.seed=0" in cmd
    recs = load_results(tmp_path / "results")
    assert recs["synth_fixmatch_s0"].config.algo.name == "fixmatch"
    assert [p.name for p in pending(grid, tmp_path / "results")] == ["synth_supervised_s1", "synth_fixmatch_s1"]
    assert record_grid(grid, tmp_path, tmp_path / "results", {}, only=["synth_*_s0"]) == {}
    assert main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results"]) == 0


def test_pending_can_take_one_variant_and_whole_seeds_first(tmp_path, two_step_overrides):
    grid = load_grid(_grid(tmp_path, two_step_overrides))
    assert [p.name for p in pending(grid, tmp_path / "none", seed_major=True)] == [
        "synth_supervised_s0", "synth_fixmatch_s0", "synth_supervised_s1", "synth_fixmatch_s1"]
    assert [p.name for p in pending(grid, tmp_path / "none", variant="")] == [p.name for p in grid]
    with pytest.raises(ConfigError, match="--variant 'no label smoothing': no run of the grid matches"):
        pending(grid, tmp_path / "none", variant="no label smoothing")
    primary = load_grid(REPO / "results" / "grid.yaml")
    chosen = pending(primary, tmp_path / "none", variant="no label smoothing", seed_major=True)
    assert {p.variant for p in chosen} == {"no label smoothing"}
    # the primary grid: five methods at seeds 0-9, FixMatch and DTA+SNL at 10-19 as well
    chosen = pending(primary, tmp_path / "none", only=["ferplus_fraction_10_ls0_*"],
                     variant="no label smoothing", seed_major=True)
    assert len(chosen) == 5 * 10 + 2 * 10
    assert [p.name for p in chosen[-2:]] == ["ferplus_fraction_10_ls0_fixmatch_s19", "ferplus_fraction_10_ls0_dta_snl_s19"]
    assert [p.name for p in chosen[:6]] == [f"ferplus_fraction_10_ls0_{a}_s{s}" for s, a in
                                            [(0, "supervised"), (0, "fixmatch"), (0, "flexmatch"), (0, "dta"),
                                             (0, "dta_snl"), (1, "supervised")]]


def test_then_records_stages_in_turn_each_seed_major(tmp_path, two_step_overrides):
    primary = load_grid(REPO / "results" / "grid.yaml")
    chosen = pending(primary, tmp_path / "none", only=["ferplus_fraction_25_ls0_*"], seed_major=True,
                     then=["ferplus_fraction_5_ls0_*", "ferplus_fraction_1_ls0_*"])
    budgets = [p.name.split("_")[2] for p in chosen]
    # the issue's order, 25 % then 5 % then 1 %, each stage whole seeds first
    assert budgets == ["25"] * 15 + ["5"] * 15 + ["1"] * 15
    assert [p.name for p in chosen[15:19]] == ["ferplus_fraction_5_ls0_supervised_s0", "ferplus_fraction_5_ls0_fixmatch_s0",
                                               "ferplus_fraction_5_ls0_dta_snl_s0", "ferplus_fraction_5_ls0_supervised_s1"]
    # a run is in the first stage that matches it, once
    again = pending(primary, tmp_path / "none", only=["ferplus_fraction_25_ls0_*"], then=["ferplus_fraction_*_ls0_*"])
    assert len(again) == len({p.name for p in again})
    assert [p.name.split("_")[2] for p in again[:15]] == ["25"] * 15
    grid = load_grid(_grid(tmp_path, two_step_overrides))
    with pytest.raises(ConfigError, match="--then synth_typo_\\*: no run of the grid matches"):
        pending(grid, tmp_path / "none", only=["synth_*_s1"], then=["synth_typo_*"])
    with pytest.raises(ConfigError, match="give --only as well"):
        pending(grid, tmp_path / "none", then=["synth_*_s1"])
    # a later stage never takes a run that an earlier one chose
    assert [p.name for p in pending(grid, tmp_path / "none", only=["synth_*"], then=["synth_*_s0"])] == \
        [p.name for p in grid]
    assert main(["results", "status", "--grid", str(tmp_path / "grid.yaml"), "--results-dir", str(tmp_path / "none"),
                 "--only", "synth_*_s1", "--then", "synth_*_s0"]) == 0


def test_a_missing_data_root_and_a_bad_grid_are_named(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("groups:\n  - {name: a, config: configs/ferplus_fraction_10_cpu.yaml, algorithms: [supervised], "
                 "seeds: [0]}\n")
    out = record_grid(load_grid(g), REPO, tmp_path / "results", {})
    assert "pass --root ferplus=PATH" in out["a"]
    g.write_text("groups:\n  - {name: a, config: x.yaml, algorithms: [supervised, fixmatch], seeds: [0]}\n")
    with pytest.raises(ConfigError, match="run names repeat"):
        load_grid(g)
    g.write_text("groups:\n  - {name: 'a_{algorithm}', config: x.yaml, seeds: [0]}\n")
    with pytest.raises(ConfigError, match="groups\\[0\\]: missing 'algorithms'"):
        load_grid(g)


def _scores(rows):
    return pd.DataFrame([{"data set": "FERPlus", "budget": b, "method": m, "seed": s, "accuracy (%)": v}
                         for b, m, s, v in rows])


def test_comparisons_pair_by_seed_within_a_budget_and_skip_methods_without_runs():
    from ssfer.book.grid_tables import comparisons

    table = _scores([("10 % labeled", "supervised", s, v) for s, v in enumerate([70.0, 71.0, 72.0])]
                    + [("10 % labeled", "FixMatch", s, v) for s, v in enumerate([71.0, 71.0, 74.0])]
                    + [("10 % labeled", "DTA", s, v) for s, v in enumerate([73.0, 72.0, 75.0])]
                    + [("10 % labeled", "FlexMatch", s, v) for s, v in enumerate([72.0, 72.0, 76.0])]
                    # another budget's runs must not enter the 10 % pairs
                    + [("5 % labeled", "FixMatch", s, 10.0) for s in range(3)])
    found = {(c.a, c.b): c.paired for c in comparisons(table, "accuracy (%)", budget="10 % labeled")}
    # DTA+SNL, FreeMatch and Ada-CM have no runs: their comparisons are left out, not failed
    assert list(found) == [("DTA", "FixMatch"), ("DTA", "FlexMatch"), ("FixMatch", "supervised"),
                           ("FlexMatch", "supervised"), ("DTA", "supervised")]
    # DTA - FixMatch: differences 2, 1, 1 -> mean 4/3, won at all three seeds
    assert found[("DTA", "FixMatch")].mean == pytest.approx(4 / 3)
    assert found[("DTA", "FixMatch")].wins == 3
    # DTA - FlexMatch: 1, 0, -1 -> mean 0, one win, the interval holds 0
    assert found[("DTA", "FlexMatch")].mean == pytest.approx(0.0)
    assert found[("DTA", "FlexMatch")].wins == 1
    assert not found[("DTA", "FlexMatch")].shows_difference


def test_pair_values_say_not_recorded_when_a_method_has_no_run():
    from ssfer.book.grid_tables import pair_values

    glued = {}
    table = _scores([("10 % labeled", m, s, 70.0 + s) for m in ("FixMatch", "DTA") for s in range(3)])
    glued |= pair_values("x", table, "DTA+SNL", "FixMatch", budget="10 % labeled")
    assert glued["x_verdict"] == "not recorded yet: no claim" and glued["x_mean"] == "—" and glued["x_n"] == 0
    glued |= pair_values("y", table, "DTA", "FixMatch", budget="10 % labeled")
    assert glued["y_n"] == 3 and glued["y_mean"] == "+0.0" and glued["y_verdict"] == "the runs show no difference"
    # one method against itself under two settings: pair by another column
    settings = table[table["method"] == "DTA"].assign(setting="smoothed")
    shifted = settings.assign(setting="control")
    shifted["accuracy (%)"] += [1.0, 1.1, 0.9]
    both = pd.concat([settings, shifted], ignore_index=True)
    glued |= pair_values("z", both, "control", "smoothed", by="setting")
    assert glued["z_n"] == 3 and glued["z_mean"] == "+1.0" and glued["z_verdict"] == "control scores higher"
    glued |= pair_values("w", settings, "control", "smoothed", by="setting")
    assert glued["w_verdict"] == "not recorded yet: no claim"
    # the two cases give the same keys, so the prose finds every value either way
    assert {k[2:] for k in glued if k.startswith("x_")} == {k[2:] for k in glued if k.startswith("y_")}


def test_a_control_group_keeps_its_variant_apart_in_the_table(tmp_path, monkeypatch, two_step_overrides):
    from ssfer.book.grid_tables import results_table

    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "configs" / "synthfer_dta_snl.yaml", tmp_path / "c.yaml")
    g = {"groups": [{"name": "s_{algorithm}_s{seed}", "config": "c.yaml", "algorithms": ["supervised"], "seeds": [0],
                     "set": two_step_overrides},
                    {"name": "s_ls0_{algorithm}_s{seed}", "variant": "no label smoothing", "config": "c.yaml",
                     "algorithms": ["supervised"], "seeds": [0], "set": {**two_step_overrides, "train.label_smoothing": 0.0}}]}
    (tmp_path / "grid.yaml").write_text(json.dumps(g))
    grid = load_grid(tmp_path / "grid.yaml")
    assert [(p.name, p.variant) for p in grid] == [("s_supervised_s0", ""), ("s_ls0_supervised_s0", "no label smoothing")]
    record_grid(grid, tmp_path, tmp_path / "results", {}, cache_dir=str(tmp_path / "c"))
    table = results_table(load_results(tmp_path / "results"), grid).set_index("run")
    assert table.loc["s_supervised_s0", "variant"] == ""
    assert table.loc["s_ls0_supervised_s0", "variant"] == "no label smoothing"
    # without the grid, every run reads as the profile's
    assert set(results_table(load_results(tmp_path / "results"))["variant"]) == {""}


# ------------------------------------------------------------------ the seed plan and per-class view
def _table(diffs_by_method, seconds=600.0):
    """A results table: method -> per-seed accuracy."""
    rows = [{"data set": "FERPlus", "budget": "10 % labeled", "variant": "v", "method": m, "seed": s,
             "accuracy (%)": acc, "train minutes": seconds / 60}
            for m, accs in diffs_by_method.items() for s, acc in enumerate(accs)]
    return pd.DataFrame(rows)


def test_plan_gives_seeds_needed_and_cpu_time_from_the_paired_sd():
    from ssfer.book import verdicts
    from ssfer.book.grid_tables import plan, plan_total

    base = [70.0, 71.0, 72.0, 73.0]
    t = _table({"supervised": base, "FixMatch": [b + d for b, d in zip(base, (1.0, 2.0, 0.0, 1.0))]})
    frame = plan(t, 1.0, family=(("FixMatch", "supervised"),), variant="v")
    row = frame.iloc[0]
    sd = pd.Series([1.0, 2.0, 0.0, 1.0]).std()
    assert row["seeds"] == 4 and row["sd"] == pytest.approx(sd)
    assert row["seeds needed"] == verdicts.seeds_for_half_width(sd, 1.0)
    assert row["more seeds"] == row["seeds needed"] - 4
    assert row["CPU hours"] == pytest.approx(row["more seeds"] * 1200 / 3600)
    capped = plan(t, 0.01, family=(("FixMatch", "supervised"),), max_seeds=15, variant="v").iloc[0]
    assert capped["seeds needed"] == 15
    total = plan_total(t, frame, variant="v")
    assert total["seeds needed"] == row["seeds needed"] and total["not timed"] == []
    assert total["runs to record"] == 2 * row["more seeds"]


def test_the_whole_plan_takes_each_method_to_its_own_comparisons_needs_not_to_the_most_seeds_any_method_has():
    from ssfer.book.grid_tables import plan, plan_total

    base = [70.0, 71.0, 72.0, 73.0, 70.5, 71.5]
    # FixMatch and DTA+SNL hold six seeds, supervised four; each comparison already has its half-width
    t = _table({"supervised": base[:4], "FixMatch": [b + 1 for b in base],
                "DTA+SNL": [b + 1.5 + 0.1 * (s % 2) for s, b in enumerate(base)]})
    family = (("DTA+SNL", "FixMatch"), ("FixMatch", "supervised"), ("DTA", "FlexMatch"))
    frame = plan(t, 1.0, family=family, variant="v")
    assert frame["more seeds"].iloc[:2].tolist() == [0, 0]
    total = plan_total(t, frame, variant="v")
    # supervised is not planned up to FixMatch's six seeds; DTA and FlexMatch, with no run, get the
    # most seeds any comparison needs, and are named as not timed
    most = int(frame["seeds needed"].iloc[:2].max())
    assert total["complete seeds"] == 0 and total["seeds needed"] == most
    assert total["runs to record"] == 2 * most and sorted(total["not timed"]) == ["DTA", "FlexMatch"]


def test_class_comparisons_give_no_verdict_for_a_class_with_few_test_faces():
    from ssfer.book.grid_tables import class_comparisons

    rows = []
    for s in range(3):
        for m, bump in (("A", 5.0), ("B", 0.0)):
            rows.append({"variant": "", "method": m, "seed": s, "class": "happy", "recall (%)": 80 + bump + s,
                         "test faces": 900})
            rows.append({"variant": "", "method": m, "seed": s, "class": "contempt", "recall (%)": 10 + bump * s,
                         "test faces": 16})
    out = class_comparisons(pd.DataFrame(rows), family=(("A", "B"),), variant="")
    happy, contempt = out.set_index("class").loc["happy"], out.set_index("class").loc["contempt"]
    assert happy["mean difference"] == pytest.approx(5.0) and happy["verdict"] == "A scores higher, by 1 point or more"
    assert contempt["test faces"] == 16 and contempt["verdict"] == "too few test faces (16): no claim"


@pytest.mark.slow  # trains one run five times
def test_replay_says_whether_a_recorded_run_trains_again_bit_for_bit(tmp_path, two_step_overrides):
    from ssfer.config import Config
    from ssfer.book.recording import replay
    from ssfer.train import run

    cfg = Config.default().with_overrides({**two_step_overrides, "algo.name": "fixmatch", "train.steps": 4})
    rec = run(cfg, cache_dir=tmp_path / "cache")
    same = replay(rec.run_dir, {}, steps=4)
    assert same["identical"] and same["rows"] == 4 and same["first_difference"] is None
    # the command takes a run's name in --results-dir or the path of its folder
    assert main(["results", "replay", str(rec.run_dir), "--steps", "4"]) == 0
    assert main(["results", "replay", rec.run_dir.name, "--results-dir", str(rec.run_dir.parent), "--steps", "4"]) == 0
    lines = (rec.run_dir / "metrics.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["loss"] += 1e-7
    lines[1] = json.dumps(row)
    (rec.run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    other = replay(rec.run_dir, {}, steps=4)
    assert not other["identical"] and other["first_difference"]["step"] == row["step"]
    with pytest.raises(ConfigError, match="steps=9"):
        replay(rec.run_dir, {}, steps=9)


@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_replay_log_keeps_each_outcome_with_the_code_and_cpu_kind_it_ran_on(tmp_path, two_step_overrides):
    from ssfer.config import Config
    from ssfer.record import this_cpu_kind, training_code_digest
    from ssfer.book.recording import REPLAYS, load_replays
    from ssfer.train import run

    rec = run(Config.default().with_overrides({**two_step_overrides, "algo.name": "supervised", "train.steps": 4}),
              cache_dir=tmp_path / "cache")
    folder = rec.run_dir.parent
    assert load_replays(folder) == []
    args = ["results", "replay", rec.run_dir.name, "--results-dir", str(folder), "--steps", "4"]
    assert main(args) == 0 and load_replays(folder) == []          # without --log nothing is kept
    assert main(args + ["--log"]) == 0
    lines = (rec.run_dir / "metrics.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["loss"] += 1e-7
    lines[2] = json.dumps(row)
    (rec.run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert main(args + ["--log"]) == 1
    kept = load_replays(folder)
    assert [(r["run"], r["identical"], r["first difference at step"]) for r in kept] == [
        (rec.run_dir.name, True, None), (rec.run_dir.name, False, row["step"])]
    assert {r["replayed CPU kind"] for r in kept} == {this_cpu_kind()}
    assert {r["replayed code"] for r in kept} == {training_code_digest()[:8]}
    recorded = json.loads((rec.run_dir / "environment.json").read_text())
    assert {r["recorded code"] for r in kept} == {recorded["code_fingerprint"][:8]}
    with open(folder / REPLAYS, "a") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match=rf"{REPLAYS}:3: not a JSON object"):
        load_replays(folder)


def test_status_says_whether_this_machine_completes_a_part_recorded_seed_alike(tmp_path, monkeypatch, capsys,
                                                                              two_step_overrides):
    from ssfer.record import this_cpu_kind, training_code_digest
    from ssfer.book.recording import open_seeds

    monkeypatch.chdir(tmp_path)
    grid = load_grid(_grid(tmp_path, two_step_overrides))

    def fake_run(name, env):
        (tmp_path / "results" / name).mkdir(parents=True)
        for f in ARTIFACTS:
            (tmp_path / "results" / name / f).write_text(json.dumps(env) if f == "environment.json" else "")

    here = this_cpu_kind()
    capability, model = here.split(", ", 1)
    fake_run("synth_supervised_s0", {"cpu_capability": "SSE9", "cpu_model": "Other", "code_fingerprint": "f" * 64,
                                     "git_commit": "abcdef1234"})
    fake_run("synth_supervised_s1", {"cpu_capability": capability, "cpu_model": model,
                                     "code_fingerprint": training_code_digest(), "git_commit": "1234567"})
    fake_run("synth_fixmatch_s1", {})   # seed 1 is complete: not listed
    assert open_seeds(grid, tmp_path / "none") == []
    seeds = open_seeds(grid, tmp_path / "results")
    assert seeds == [{"seed": 0, "variant": "", "recorded": ["synth_supervised_s0"], "left": ["synth_fixmatch_s0"],
                      "kinds": ["SSE9, Other"], "codes": ["ffffffff"], "commits": ["abcdef1"]}]
    assert main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results"]) == 0
    out = capsys.readouterr().out
    assert f"this machine: {here}" in out
    # the fake folders cannot be read as runs: the estimate of what is left says so, status goes on
    assert "no estimate of the CPU hours left: " in out and "synth_" in out.split("no estimate")[1]
    assert ("seed 0: 1 of 2 runs recorded on SSE9, Other, code ffffffff (commit abcdef1); "
            "completing it here mixes CPU kinds and code versions") in out
    (tmp_path / "results" / "synth_fixmatch_s1" / "summary.json").unlink()   # seed 1 part-recorded, on this kind
    main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results"])
    seed1 = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("seed 1:"))
    assert seed1.startswith(f"  seed 1: 1 of 2 runs recorded on {here}, code {training_code_digest()[:8]}")
    assert seed1.endswith("this machine completes it alike")


def test_record_refuses_to_complete_a_seed_on_another_cpu_kind_unless_a_replay_pairs_it(tmp_path, monkeypatch,
                                                                                        capsys, two_step_overrides):
    """Runs of one seed are paired: one recorded on another CPU kind or code
    differs from what this machine trains (a session on a new machine found seed
    2 at 5 % half-recorded on AVX2 and this one AVX512), so `record` stops before
    training, naming the runs, until an identical replay here pairs them, or
    --mix-seeds says to."""
    from ssfer.book import recording
    from ssfer.record import this_cpu_kind, training_code_digest

    monkeypatch.chdir(tmp_path)
    grid = load_grid(_grid(tmp_path, two_step_overrides))
    other = {"cpu_capability": "SSE9", "cpu_model": "Other", "code_fingerprint": "f" * 64, "git_commit": "abcdef1234"}
    (tmp_path / "results" / "synth_supervised_s0").mkdir(parents=True)
    for f in ARTIFACTS:
        (tmp_path / "results" / "synth_supervised_s0" / f).write_text(json.dumps(other) if f == "environment.json"
                                                                      else "")
    trained = []
    monkeypatch.setattr(recording, "record_grid", lambda *a, **k: trained.append(k["only"]) or {})
    record = ["results", "record", "--grid", "grid.yaml", "--results-dir", "results", "--only", "synth_*_s0"]
    assert main(record) == 2 and trained == []
    err = capsys.readouterr().err
    assert "seed 0 (synth_supervised_s0)" in err and "--mix-seeds" in err and "results replay RUN --log" in err
    [seed] = recording.open_seeds(grid, tmp_path / "results")
    here, code = this_cpu_kind(), training_code_digest()[:8]
    assert recording.unpaired_runs(seed, tmp_path / "results", here, code) == ["synth_supervised_s0"]

    # a replay that differed, or one of another recording, or one on another kind, pairs nothing
    def replayed(identical, commit="abcdef1", kind=here):
        return json.dumps({"run": "synth_supervised_s0", "identical": identical, "recorded code": "ffffffff",
                           "recorded commit": commit, "recorded CPU kind": "SSE9, Other", "replayed code": code,
                           "replayed CPU kind": kind}) + "\n"
    (tmp_path / "results" / recording.REPLAYS).write_text(
        replayed(False) + replayed(True, commit="0000000") + replayed(True, kind="SSE9, Other"))
    assert recording.unpaired_runs(seed, tmp_path / "results", here, code) == ["synth_supervised_s0"]
    assert main(record) == 2
    capsys.readouterr()
    assert main(record + ["--mix-seeds"]) == 0 and trained == [["synth_*_s0"]]
    # an identical replay of this very recording, here, pairs it
    with open(tmp_path / "results" / recording.REPLAYS, "a") as f:
        f.write(replayed(True))
    assert recording.unpaired_runs(seed, tmp_path / "results", here, code) == []
    assert main(record) == 0 and len(trained) == 2
    assert "each of its runs replayed identical here (replays.jsonl): this machine completes it alike" \
        in capsys.readouterr().out


def test_a_run_back_from_a_worker_of_another_cpu_kind_is_not_recorded_beside_its_seed(tmp_path, monkeypatch,
                                                                                       two_step_overrides):
    """`record` checks part-recorded seeds against its own machine before
    training, but a remote cluster's worker may be of another kind: so each run
    is checked again as it comes back, against its seed's runs committed by
    then, and one that would mix kinds within a seed is not committed."""
    from ssfer.book import recording
    from ssfer.record import training_code_digest

    monkeypatch.chdir(tmp_path)
    grid = load_grid(_grid(tmp_path, two_step_overrides))
    code = training_code_digest()
    kinds = {"synth_supervised_s0": "AVX2", "synth_fixmatch_s0": "AVX512",
             "synth_supervised_s1": "AVX512", "synth_fixmatch_s1": "AVX512"}

    def trained_on_a_worker(cfg, cache_dir, argv, code_):
        name = f"synth_{cfg['algo']['name']}_s{cfg['split']['seed']}"
        env = {"cpu_capability": kinds[name], "cpu_model": "EPYC", "code_fingerprint": code, "git_commit": "abc1234"}
        return {"files": {f: (json.dumps(env) if f == "environment.json" else "{}").encode()
                          for f in recording.RUN_FILES}, "data_root": None}

    monkeypatch.setattr(recording, "train_run", trained_on_a_worker)
    results = tmp_path / "results"
    out = record_grid(grid, tmp_path, results, {}, seed_major=True)
    # seed 0's first run sets its kind; its second came from another and is left out
    assert out["synth_supervised_s0"] == "" and out["synth_supervised_s1"] == out["synth_fixmatch_s1"] == ""
    assert "synth_supervised_s0 came from another CPU kind" in out["synth_fixmatch_s0"]
    assert "AVX512, EPYC" in out["synth_fixmatch_s0"] and "--mix-seeds" in out["synth_fixmatch_s0"]
    assert not (results / "synth_fixmatch_s0").exists() and recording.is_recorded(results, "synth_fixmatch_s1")
    fixmatch_s0 = next(p for p in grid if p.name == "synth_fixmatch_s0")
    seed_kind = json.loads((results / "synth_supervised_s0" / "environment.json").read_text())
    assert recording.mixes_seed(grid, results, fixmatch_s0, seed_kind) == []
    # on a worker of the seed's own kind it is recorded; or anywhere, told to mix
    kinds["synth_fixmatch_s0"] = "AVX2"
    assert record_grid(grid, tmp_path, results, {}) == {"synth_fixmatch_s0": ""}
    shutil.rmtree(results / "synth_fixmatch_s0")
    kinds["synth_fixmatch_s0"] = "AVX512"
    assert record_grid(grid, tmp_path, results, {}, mix_seeds=True) == {"synth_fixmatch_s0": ""}


def test_a_selection_that_matches_nothing_and_a_replay_that_compares_nothing_are_refused(
        tmp_path, monkeypatch, capsys, two_step_overrides):
    """They did nothing and exited 0 ("0 logged rows ... identical" even entered
    replays.jsonl as pairing evidence)."""
    from ssfer.config import Config
    from ssfer.train import run

    monkeypatch.chdir(tmp_path)
    _grid(tmp_path, two_step_overrides)
    for flags in (["--variant", "typo"], ["--only", "nomatch*"]):
        assert main(["results", "record", "--grid", "grid.yaml", "--results-dir", "results", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("ssfer: config error: --") and "no run of the grid matches (its variants: '')" in err
        assert len(err.splitlines()) == 1
    assert main(["results", "status", "--grid", "grid.yaml", "--variant", "typo"]) == 2
    rec = run(Config.default().with_overrides({**two_step_overrides, "algo.name": "supervised", "train.steps": 6,
                                               "train.log_every": 3}), cache_dir=tmp_path / "cache")
    assert main(["results", "replay", str(rec.run_dir), "--steps", "2", "--log"]) == 2
    err = capsys.readouterr().err
    assert "--steps 2 covers no logged row" in err and "use --steps 3 or more" in err
    assert not (rec.run_dir.parent / "replays.jsonl").exists()
    assert main(["results", "replay", "no_such_run", "--results-dir", str(tmp_path)]) == 1
    assert "run folder error:" in capsys.readouterr().err


def test_the_cost_left_prices_each_run_per_step_of_its_method_in_its_group(tmp_path):
    from ssfer.book.recording import Planned, cost_left
    from ssfer.config import Config
    from ssfer.errors import RunFolderError

    (tmp_path / "c.yaml").write_text("train:\n  steps: 10000\n")
    (tmp_path / "d.yaml").write_text("data:\n  dataset: synthfer\n")   # no steps: the default

    def planned(name, algo, frac, steps=None, config="c.yaml"):
        sets = {"algo.name": algo, "split.seed": 0, "train.seed": 0, "split.fraction": frac}
        return Planned(name, config, {**sets, **({"train.steps": steps} if steps else {})})

    grid = [planned("r1", "fixmatch", 0.1, 4000), planned("r2", "fixmatch", 0.1, 4000),
            planned("r3", "supervised", 1.0), planned("r4", "fixmatch", 0.01, 4000),
            planned("a", "fixmatch", 0.1, 4000), planned("b", "fixmatch", 0.05, 2000),
            planned("c", "supervised", 1.0, 4000), planned("d", "dta", 0.01, 4000), planned("e", "supervised", 1.0),
            planned("f", "supervised", 0.5, config="d.yaml")]
    for name, seconds, steps in (("r1", 1200, 4000), ("r2", 1800, 4000), ("r3", 600, 10000), ("r4", 4000, 4000)):
        (tmp_path / "res" / name).mkdir(parents=True)
        for f in ARTIFACTS:
            (tmp_path / "res" / name / f).write_text("")
        (tmp_path / "res" / name / "summary.json").write_text(json.dumps({"train_seconds": seconds, "steps": steps}))
    out = cost_left(grid, tmp_path / "res", ["a", "b", "c", "d", "e", "f"], tmp_path)
    # a: FixMatch in its group (0.375 s/step); b: FixMatch anywhere; c: 4000 steps at 0.06 s;
    # e: its config's 10,000 steps; f: the default steps; d: no recorded DTA run
    fixmatch = (0.3 + 0.45 + 1.0) / 3
    assert out["seconds"] == pytest.approx(0.375 * 4000 + fixmatch * 2000 + 0.06 * 4000 + 0.06 * 10000
                                           + 0.06 * Config.default().train.steps)
    assert out["costed"] == 5 and out["not costed"] == ["d"]
    # the range: each run at the fastest, then the slowest, of the paces its mean is taken over
    assert out["fastest"] == pytest.approx(0.3 * 4000 + 0.3 * 2000 + 0.06 * (4000 + 10000)
                                           + 0.06 * Config.default().train.steps)
    assert out["slowest"] == pytest.approx(0.45 * 4000 + 1.0 * 2000 + 0.06 * (4000 + 10000)
                                           + 0.06 * Config.default().train.steps)
    # steps a resumed checkpoint already trained are not priced again; a checkpoint past the plan costs nothing
    part = cost_left(grid, tmp_path / "res", ["a", "b", "c", "d", "e", "f"], tmp_path, trained={"a": 1000, "c": 9999})
    assert out["seconds"] - part["seconds"] == pytest.approx(0.375 * 1000 + 0.06 * 4000)
    assert part["costed"] == out["costed"]
    (tmp_path / "res" / "r4" / "summary.json").write_text("{")
    with pytest.raises(RunFolderError, match=r"r4/summary\.json: cannot read its train_seconds and steps"):
        cost_left(grid, tmp_path / "res", ["a"], tmp_path)


def test_status_counts_the_steps_of_a_checkpoint_that_recording_resumes(tmp_path, monkeypatch, capsys,
                                                                         two_step_overrides):
    """A session that stops leaves each unfinished run's checkpoint in the cache:
    status says how far it got and whether `results record` resumes it."""
    from ssfer.book import progress
    from ssfer.train import run_dir_for
    from ssfer.train.loop import Trainer

    monkeypatch.chdir(tmp_path)
    grid = load_grid(_grid(tmp_path, {**two_step_overrides, "train.steps": 6, "train.ckpt_every": 2}))
    cfg = next(p for p in grid if p.name == "synth_supervised_s0").resolve(tmp_path, {})
    assert Trainer(cfg, run_dir_for(cfg, tmp_path / "c")).fit(stop_after=5) is None   # its step-4 checkpoint kept

    parts = progress.partial(grid, tmp_path, tmp_path / "c")
    assert list(parts) == ["synth_supervised_s0"]
    found = parts["synth_supervised_s0"]
    assert (found.done, found.planned, found.unit, found.resumes) == (4, 6, "step", True)
    assert main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results", "--cache-dir", "c"]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if "synth_supervised_s0" in x and "to record" in x)
    assert line.startswith("  to record: synth_supervised_s0 (checkpoint at step 4 of 6, written ")
    assert line.endswith("; recording resumes from it)")
    assert [x for x in lines if "to record: synth_fixmatch_s0" in x] == ["  to record: synth_fixmatch_s0"]
    # another cache knows nothing of it
    assert progress.partial(grid, tmp_path, tmp_path / "other") == {}
    with pytest.raises(ValueError, match="kind must be one of"):
        progress.partial(grid, tmp_path, tmp_path / "c", kind="runs")

    # the same checkpoint under another key (as other training code or data leave it) is not resumed
    moved = found.folder.with_name("0" * 20)
    found.folder.rename(moved)
    stale = progress.partial(grid, tmp_path, tmp_path / "c")["synth_supervised_s0"]
    assert (stale.done, stale.resumes) == (4, False) and "another cache key" in stale.says()
    # a checkpoint that cannot be read is named as such, not counted
    good = (moved / "checkpoint.pt").read_bytes()
    (moved / "checkpoint.pt").write_bytes(b"truncated")
    broken = progress.partial(grid, tmp_path, tmp_path / "c")["synth_supervised_s0"]
    assert broken.done is None and not broken.resumes and broken.says().startswith("a checkpoint it cannot read (")

    # what status says recording resumes, recording resumes
    (moved / "checkpoint.pt").write_bytes(good)
    moved.rename(found.folder)
    record_grid(grid, tmp_path, tmp_path / "results", {}, only=["synth_supervised_s0"], cache_dir=str(tmp_path / "c"))
    assert json.loads((tmp_path / "results" / "synth_supervised_s0" / "summary.json").read_text())["resumed"] is True
    assert progress.partial(grid, tmp_path, tmp_path / "c") == {}

