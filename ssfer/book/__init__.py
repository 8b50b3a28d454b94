"""The book's wing: what the notebooks, the recorded real-face grid and the course
labs need on top of the library. Nothing in the library imports it
(``tests/test_layers.py``); ``ssfer/README.md`` maps its rooms."""
