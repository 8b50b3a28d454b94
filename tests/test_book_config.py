"""The book's shared run base: chapters that mean the same run must ask for the
same config (hence the same cache entry), whichever way they build it."""
from ssfer.book.runs import book_config, page_config, scale_of
from ssfer.config import Config
from ssfer.train import run_dir_for

SCALE = dict(n_train=4000, n_test=1000, image_size=24, labels_per_class=10, model="test_resnet",
             steps=300, batch_size=32, seed=0, device="auto")


def test_seed_override_equals_building_with_that_seed():
    # lab 3 overrides the seed of a seed-0 base; chapter 3 builds each seed directly
    lab = book_config(**SCALE, algo__name="dta_snl").with_overrides({"split.seed": 2, "train.seed": 2})
    chapter = book_config(**{**SCALE, "seed": 2}, algo__name="dta_snl")
    assert lab.hash() == chapter.hash()
    assert run_dir_for(lab, "/c") == run_dir_for(chapter, "/c")


def test_scale_and_overrides_reach_the_config():
    class P:  # a notebook's checked parameters
        pass
    for k, v in SCALE.items():
        setattr(P, k, v)
    cfg = book_config(**scale_of(P), algo__name="fixmatch", model__attention="none")
    assert isinstance(cfg, Config)
    assert (cfg.data.size, cfg.data.difficulty, cfg.train.mu, cfg.train.steps) == (24, 0.6, 2, 300)
    assert (cfg.algo.name, cfg.model.attention, cfg.train.optimizer) == ("fixmatch", "none", "adamw")
    assert (cfg.train.eval_every, cfg.train.log_every) == (30, 7)
    # a chapter over several seeds asks for each one; a protocol without a per-class budget passes its own
    assert scale_of(P, seed=2)["seed"] == 2 and scale_of(P)["seed"] == 0
    del P.labels_per_class
    assert scale_of(P, labels_per_class=10)["labels_per_class"] == 10


def test_page_config_is_book_config_at_the_pages_scale():
    class P:
        pass
    for k, v in SCALE.items():
        setattr(P, k, v)
    page = page_config(P, seed=2, labels_per_class=5, algo__name="dta", difficulty=0.8)
    direct = book_config(**{**SCALE, "seed": 2, "labels_per_class": 5}, algo__name="dta", difficulty=0.8)
    assert page.hash() == direct.hash()
    assert (page.split.seed, page.split.n_per_class, page.data.difficulty) == (2, 5, 0.8)
    assert page_config(P).hash() == book_config(**SCALE).hash()


def test_book_runs_use_one_thread_so_a_rerun_repeats_every_number(tmp_path):
    # on a CPU the numbers depend on torch's thread count; a book run fixes it, so
    # the same config gives the same run whatever the process it trains in
    import torch

    from ssfer.train import run

    cfg = book_config(n_train=400, n_test=70, image_size=32, labels_per_class=4, model="test_resnet", steps=4,
                      batch_size=8, seed=0, device="cpu", algo__name="fixmatch")
    assert cfg.train.threads == 1
    before = torch.get_num_threads()
    try:
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rec = run(cfg, cache_dir=tmp_path / str(threads))
            out.append((rec.summary["ece"], rec.summary["confusion"], rec.history[-1]["loss"]))
    finally:
        torch.set_num_threads(before)
    assert out[0] == out[1]
