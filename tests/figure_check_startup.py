# An IPython startup file for the kernels of `make test` (the Makefile copies it into
# _build/ipython and points IPYTHONDIR there): each figure a page shows is checked
# for a legend drawn over an axis's text (ssfer.book.figures.legend_collisions) before it
# is shown, and what was found is appended to $SSFER_FIGURE_CHECK, which
# tests/test_book.py reads. A browser sees a figure only as an image; this is where
# a legend's place can be checked.
import os as _os

if _os.environ.get("SSFER_FIGURE_CHECK"):
    import matplotlib.pyplot as _plt

    def _install(show=_plt.show, out=_os.environ["SSFER_FIGURE_CHECK"]):
        def checked_show(*args, **kwargs):
            from ssfer.book.figures import legend_collisions

            lines = [f"checked: {len(_plt.get_fignums())} figure(s) in {_os.getcwd()}"]
            lines += [f"COLLISION: {x}" for n in _plt.get_fignums() for x in legend_collisions(_plt.figure(n))]
            with open(out, "a") as f:
                f.write("".join(line + "\n" for line in lines))
            return show(*args, **kwargs)

        _plt.show = checked_show

    _install()
