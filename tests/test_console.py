"""Verbosity: -q keeps warnings and errors only, the default adds progress lines, -v debug."""

from __future__ import annotations

import logging

import pytest

from weaksup import __main__ as cli
from weaksup import console

log = logging.getLogger("weaksup.test_console")


@pytest.fixture(autouse=True)
def _restore():
    logger = logging.getLogger(console.LOGGER)
    state = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = state


def test_a_capture_handler_is_not_an_output(capsys):
    # pytest hangs its capture handlers on non-propagating loggers; the commands must still set up theirs.
    logger = logging.getLogger(console.LOGGER)
    logger.handlers[:] = [h for h in logger.handlers if not isinstance(h, console._Terminal)]
    logger.addHandler(logging.NullHandler())
    console.ensure_setup()
    log.info("shown line")
    assert "shown line" in capsys.readouterr().out


@pytest.mark.parametrize("verbosity, shown", [(-1, {"warning"}), (0, {"info", "warning"}),
                                              (1, {"debug", "info", "warning"})])
def test_levels_route_to_stdout_and_stderr(capsys, verbosity, shown):
    console.setup(verbosity)
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    out, err = capsys.readouterr()
    assert ("debug line" in out) == ("debug" in shown)
    assert ("info line" in out) == ("info" in shown)
    assert "warning" not in out and err.strip() == "WARNING: warning line"
    assert console.progress_enabled() == (verbosity >= 0)


def test_progress_bar_is_silent_when_quiet(capsys, monkeypatch):
    console.setup(-1)
    for _ in console.progress(range(3), desc="quiet", unit="img"):
        pass
    assert "quiet" not in capsys.readouterr().err
    console.setup(0)
    monkeypatch.setenv("WEAKSUP_PROGRESS", "0")
    assert not console.progress_enabled()


def test_verbosity_flags_anywhere_on_the_command_line(capsys, tmp_path):
    # `runs` on an empty folder is a usage error: its message is an error, printed whatever the level.
    assert cli.main(["-q", "runs", str(tmp_path)]) == 2
    assert logging.getLogger(console.LOGGER).level == logging.WARNING
    assert cli.main(["runs", str(tmp_path), "--verbose"]) == 2
    assert logging.getLogger(console.LOGGER).level == logging.DEBUG
    assert "no runs under" in capsys.readouterr().err
    assert cli.main([]) == 2 and "usage: weaksup" in capsys.readouterr().err
