"""The four answer files, byte for byte as served to the sample client, against tests/golden/.

After a deliberate template change, rewrite them and read the diff before committing:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/answers -k golden
"""

from __future__ import annotations

from pathlib import Path

import pytest
from answerkit import SAMPLES, serve_answer

from tests.helpers import check_golden

GOLDEN = Path(__file__).parents[1] / "golden"
FILES = {
    "debian-preseed": "answer-debian-preseed.cfg",
    "kickstart": "answer-kickstart.cfg",
    "ubuntu-autoinstall": "answer-ubuntu-autoinstall.yaml",
    "windows-unattend": "answer-windows-unattend.xml",
}


@pytest.mark.parametrize("template", sorted(FILES))
def test_golden(tmp_path: Path, template: str) -> None:
    check_golden(GOLDEN / FILES[template], serve_answer(tmp_path, template, SAMPLES[template]))
