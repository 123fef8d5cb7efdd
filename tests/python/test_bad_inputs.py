"""Every case of the generated malformed-input corpus (tests/data/make_bad_corpus.py)
must make `ktq inspect` (where headers show it) and `ktq convert` fail
cleanly: exit status 1, one `ktq: error:` line naming the file and tensor, no
crash, and no file with a final name left in the output folder (the CLI
keeps partial state, hidden, for --resume)."""
import json
import os
import subprocess
import sys

import pytest

KTQ = os.environ.get("KTQ_BIN", "ktq")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "data", "make_bad_corpus.py"), str(root)], check=True,
                   capture_output=True)
    with open(root / "manifest.json") as f:
        return root, json.load(f)


def test_corpus_is_complete(corpus):
    _, cases = corpus
    assert len(cases) >= 20


def test_every_case_is_refused_with_a_named_error(corpus, tmp_path):
    root, cases = corpus
    for case in cases:
        folder = root / case["case"]
        commands = {"inspect": ["inspect", folder], "convert": ["convert", folder, tmp_path / case["case"]]}
        for args in (commands[c] for c in case["commands"]):
            r = subprocess.run([KTQ, *map(str, args)], capture_output=True, text=True)
            where = f"{case['case']} ({args[0]})"
            assert r.returncode == case["exit"], f"{where}: exit {r.returncode}\n{r.stderr}"
            assert r.stderr.startswith("ktq: error: "), f"{where}: {r.stderr}"
            error_lines = [l for l in r.stderr.splitlines() if l.startswith("ktq: error: ")]
            assert len(error_lines) == 1, f"{where}: {r.stderr}"
            for needle in case["message_contains"]:
                assert needle in r.stderr, f"{where}: '{needle}' not in {r.stderr}"
        out = tmp_path / case["case"]
        finals = [p.name for p in out.iterdir() if not p.name.endswith(".ktq-partial") and p.name != ".ktq-journal.json"] \
            if out.exists() else []
        assert not finals, f"{case['case']}: convert left final-named files {finals}"
