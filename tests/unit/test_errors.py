from pathlib import Path

from sealbox import errors

DOCS = Path(__file__).parents[2] / "docs" / "reference" / "exit-codes.md"


def test_exit_code_page_matches_the_error_classes():
    assert DOCS.read_text() == errors.exit_code_markdown(), "run `make docs`"


def test_every_error_has_a_summary_and_a_nonzero_code():
    for cls in errors._all_classes():
        assert cls.exit_code not in (0, 2, 70, 130)
        assert cls.summary and cls.summary.endswith(".")


def test_messages_are_one_line():
    assert "\n" not in str(errors.SourceError("first\nsecond"))
