import numpy as np
from PIL import Image

from ssfer.cli import main as cli_main
from ssfer.config import Config
from ssfer.data.synthfer import make_synthfer
from ssfer.evaluate import evaluate_run
from ssfer.train import run


def test_cross_dataset_eval_maps_classes_and_counts_what_it_leaves_out(tiny_overrides, tmp_path, capsys):
    rec = run(Config.default().with_overrides({**tiny_overrides, "algo.name": "supervised"}), cache_dir=tmp_path)
    # a folder-per-class set spelled differently, with a class the model never saw
    faces = make_synthfer(60, size=40, seed=5, split="test")
    root = tmp_path / "faces"
    words = {"happiness": "happy", "anger": "angry", "surprise": "surprised"}
    n = {"happy": 0, "angry": 0, "surprised": 0, "contempt": 0}
    for i, (img, y) in enumerate(zip(faces.images, faces.labels)):
        name = words.get(faces.class_names[y])
        if name is None:
            continue
        for folder in (name, "contempt") if i % 5 == 0 else (name,):
            (root / "test" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0]).save(root / "test" / folder / f"{i}.png")
            n[folder] += 1
    out = evaluate_run(rec.run_dir, "folder", root, split="test", device="cpu")
    assert out["n"] == n["happy"] + n["angry"] + n["surprised"]
    assert sum(out["left_out"].values()) == n["contempt"]
    assert np.array(out["confusion"]).sum() == out["n"]
    assert 0 <= out["accuracy"] <= 1 and out["class_names"] == rec.class_names

    assert cli_main(["eval", str(rec.run_dir), "--dataset", "folder", "--root", str(root)]) == 0
    assert '"evaluated_on": "folder/test"' in capsys.readouterr().out
