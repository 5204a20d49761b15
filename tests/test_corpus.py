from vdr.data.corpus import normalise_whitespace, stable_rank
from vdr.data.docstrings import docstring_entries
from vdr.data.sources import split_by_group


def test_docstring_entries_from_a_package(fake_package):
    entries, dropped = docstring_entries([fake_package], 10, 200, 40, 2000)
    ids = [e.doc_id for e in entries]
    assert "toypkg.alpha.ops.add" in ids and "toypkg.beta.more.add" in ids
    assert not any("_private" in i or "tests" in i or "same_as_body" in i for i in ids)
    assert dropped["summary_on_page"] == 1
    add = next(e for e in entries if e.doc_id == "toypkg.alpha.ops.add")
    assert add.summary == "Compute the add of the input."
    assert add.title == "add(x, y)"
    assert add.group == "toypkg.alpha"
    assert "Parameters" in add.body
    for entry in entries:
        assert normalise_whitespace(entry.summary) not in normalise_whitespace(entry.body)


def test_entries_are_deterministic_and_deduplicated(fake_package):
    first, _ = docstring_entries([fake_package], 10, 200, 40, 2000)
    second, _ = docstring_entries([fake_package], 10, 200, 40, 2000)
    assert first == second
    assert len({e.summary for e in first}) == len(first)


def test_split_by_group_keeps_groups_whole(fake_package):
    entries, _ = docstring_entries([fake_package], 10, 200, 40, 2000)
    train, evaluation, groups = split_by_group(entries, num_eval_pages=1, seed=0)
    assert len(groups) == 1
    assert {e.group for e in evaluation} == set(groups)
    assert not {e.group for e in train} & set(groups)
    assert len(train) + len(evaluation) == len(entries)


def test_stable_rank_is_seeded():
    assert stable_rank("a", 1) == stable_rank("a", 1) != stable_rank("a", 2)


def test_unknown_package_is_named():
    import pytest

    with pytest.raises(ValueError, match="fetch.packages: 'no_such_package_xyz'"):
        docstring_entries(["no_such_package_xyz"], 1, 10, 1, 10)
