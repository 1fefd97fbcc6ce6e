"""``initlab.lab()``: the lab in a background thread, shown inline in a notebook, stoppable."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

import initlab


@pytest.mark.slow  # starts the lab server (12 s)
def test_lab_starts_on_a_free_port_shows_an_iframe_and_stops():
    lab = initlab.lab()
    try:
        assert lab.url.startswith("http://127.0.0.1:") and lab.running
        options = json.loads(urllib.request.urlopen(f"{lab.url}/api/options", timeout=10).read())
        assert "relu" in options["activations"] and options["defaults"]["data_seed"] == 0
        page = lab._repr_html_()
        assert f'<iframe src="{lab.url}/"' in page and "lab.stop()" in page
        assert repr(lab) == f"LabServer(url={lab.url!r}, running=True)"
    finally:
        lab.stop()
    lab.stop()  # a second stop does nothing
    assert not lab.running and "stopped" in lab._repr_html_()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{lab.url}/api/options", timeout=5)


def test_two_labs_run_side_by_side_and_a_with_block_stops_one():
    with initlab.lab() as first, initlab.lab() as second:
        assert first.url != second.url
        for lab in (first, second):
            assert urllib.request.urlopen(f"{lab.url}/", timeout=10).status == 200
    assert not first.running and not second.running
