"""docs/params.md is generated from the schema's descriptions (vdr/config/reference.py) and kept current."""

import pytest
import yaml

from tests.support.repo import REPO
from vdr.config.reference import REGENERATE, main, reference


def test_docs_params_md_is_what_the_schema_generates(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().err


def test_a_stale_page_names_the_command_that_regenerates_it(tmp_path, capsys):
    stale = tmp_path / "params.md"
    stale.write_text(reference().replace("The adapters' rank.", "The rank."), encoding="utf-8")
    assert main(["--check", "--output", str(stale)]) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and f"`{REGENERATE} --output {stale}`" in message


def dotted_keys(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in values.items():
        keys.append(prefix + name)
        if isinstance(value, dict):
            keys += dotted_keys(value, f"{prefix}{name}.")
    return keys


def test_every_key_of_params_yaml_is_in_the_page():
    page = (REPO / "docs" / "params.md").read_text(encoding="utf-8")
    keys = dotted_keys(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")))
    sections = [key for key in keys if "." not in key and f"\n## {key}\n" in page]
    assert [key for key in keys if key not in sections and f"| `{key}` |" not in page] == []
    for key in ("train_embedder.lora.r", "models.processor_kwargs.size.longest_edge", "fetch.dataset", "fetch.path"):
        assert f"| `{key}` |" in page  # keys the cpu profile leaves unset are there too


def test_a_key_without_a_description_stops_the_generator(monkeypatch):
    from vdr.config.render import Render

    monkeypatch.setattr(Render.model_fields["dpi"], "description", None)
    with pytest.raises(ValueError, match=r"render\.dpi: no description"):
        reference()
