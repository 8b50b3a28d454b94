"""The labs' simulated teacher: what its docstring promises, for the labs to rest on."""
import torch

from ssfer.classes import RAFDB_ORDER
from ssfer.book.teaching.simulated_teacher import C, FREQ, NEIGHBOUR, draw_labels, simulate_logits


def test_classes_and_frequencies_are_raf_dbs():
    assert C == len(RAFDB_ORDER) == 7
    assert abs(float(FREQ.sum()) - 1) < 1e-6
    assert RAFDB_ORDER[int(FREQ.argmax())] == "happiness" and RAFDB_ORDER[int(FREQ.argmin())] == "fear"
    # every look-alike is another class
    assert all(int(NEIGHBOUR[c]) != c for c in range(C))


def test_without_noise_the_true_class_leads_and_its_look_alike_comes_second():
    labels = torch.arange(C)
    z = simulate_logits(labels, 0.8, torch.Generator().manual_seed(0), noise=0.0)
    assert torch.equal(z.argmax(1), labels)
    second = z.clone()
    second[torch.arange(C), labels] = -1e9
    assert torch.equal(second.argmax(1), NEIGHBOUR)


def test_confidence_grows_with_progress_and_faster_for_frequent_classes():
    labels = torch.arange(C)
    conf = [simulate_logits(labels, t, torch.Generator(), noise=0.0).softmax(1).max(1).values for t in (0.1, 0.5, 1.0)]
    assert all((b > a).all() for a, b in zip(conf, conf[1:]))
    happy, fear = RAFDB_ORDER.index("happiness"), RAFDB_ORDER.index("fear")
    assert conf[0][happy] > conf[0][fear]


def test_the_stream_repeats_for_a_seed_and_noise_scales_it():
    def draw(noise):
        gen = torch.Generator().manual_seed(3)
        labels = draw_labels(64, gen)
        return labels, simulate_logits(labels, 0.0, gen, noise=noise)  # progress 0: noise only
    (la, a), (lb, b) = draw(1.2), draw(1.2)
    assert torch.equal(la, lb) and torch.equal(a, b)
    _, c = draw(2.4)
    assert torch.allclose(c, 2 * a)
