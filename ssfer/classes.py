"""One canonical class vocabulary for every dataset.

Each loader maps its own class names (or codes) onto these names, so a model
trained on one data set can be tested on another. The order of the first seven
is RAF-DB's (labels 1..7), which SynthFER also follows.
"""
from __future__ import annotations

RAFDB_ORDER: tuple[str, ...] = (
    "surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral",
)
CANONICAL: tuple[str, ...] = RAFDB_ORDER + ("contempt",)

# RAF-DB basic's train and test counts per class, in RAFDB_ORDER; SynthFER
# draws its class frequencies from these.
RAFDB_TRAIN_COUNTS: tuple[int, ...] = (1290, 281, 717, 4772, 1982, 705, 2524)
RAFDB_TEST_COUNTS: tuple[int, ...] = (329, 74, 160, 1185, 478, 162, 680)
# Each expression's look-alike, by index in RAFDB_ORDER: fear<->surprise,
# anger<->disgust, sadness<->neutral, happiness->neutral. SynthFER blends
# ambiguous faces towards it; the labs' simulated teacher confuses it.
RAFDB_LOOKALIKE: tuple[int, ...] = (1, 0, 5, 6, 6, 2, 4)

_SYNONYMS = {
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "disgust": "disgust", "disgusted": "disgust",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "sadness": "sadness", "sad": "sadness",
    "anger": "anger", "angry": "anger",
    "neutral": "neutral", "neutrality": "neutral",
    "contempt": "contempt",
}


def canonical_name(name: str) -> str:
    """Map a dataset's class name to the canonical vocabulary.

    Raises ValueError naming the unknown class, never guesses.
    """
    key = name.strip().lower()
    if key not in _SYNONYMS:
        raise ValueError(
            f"unknown expression class {name!r}; known: {sorted(set(_SYNONYMS))}")
    return _SYNONYMS[key]


def index_map(source: tuple[str, ...] | list[str], target: tuple[str, ...] | list[str]) -> list[int]:
    """For each source class, its index in ``target`` (-1 if absent there)."""
    tgt = [canonical_name(t) for t in target]
    return [tgt.index(c) if (c := canonical_name(s)) in tgt else -1 for s in source]
