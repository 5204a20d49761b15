"""Publishing to the Hugging Face Hub (or any server that speaks its API, via HF_ENDPOINT).

The token comes from the HF_TOKEN environment variable only; it is passed to huggingface_hub and
never written to a file, a log or the model card.
"""

from __future__ import annotations

import os
from pathlib import Path


def hub_token() -> str:
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        raise PermissionError(
            "publish.push is true but HF_TOKEN is not set; export a Hugging Face write token as HF_TOKEN "
            "(it is read from the environment only), or set publish.push: false for a dry run"
        )
    return token


def push_folder(folder: Path, repo_id: str, private: bool, commit_message: str) -> str:
    """Create the model repo if needed and upload `folder` in one commit; unchanged files are not sent again."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_token())
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message)
    return getattr(commit, "commit_url", str(commit))
