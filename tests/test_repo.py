"""The repository keeps its promises: the README's commands and what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_starts_with_what_it_is_for_then_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```bash")
    title, purpose = text[:first_block].strip().split("\n", 1)
    assert title == "# pytest-kerasfreeze"
    sentences = [s for s in purpose.replace("\n", " ").split(". ") if s.strip()]
    assert len(sentences) == 2, sentences
    examples, tests = readme_commands()[:2]
    assert "pytest -p kerasfreeze examples/" in examples
    assert "tox run" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci
