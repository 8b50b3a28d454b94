"""Helpers for tests that send a real Ctrl-C (SIGINT) to a child process."""
import signal


def default_sigint() -> None:
    """``preexec_fn`` of such a child: SIGINT back to its default. A shell starts
    background jobs with SIGINT ignored, the child inherits that, and Python then
    installs no KeyboardInterrupt handler, so the Ctrl-C under test would do nothing
    (a `make test &` run saw both Ctrl-C tests finish their runs with exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
