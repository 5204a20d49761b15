"""The `publish` section: where the models go on the Hub, and whether they are pushed at all."""

from __future__ import annotations

from pydantic import Field, model_validator

from vdr.config.section import Int, Section

# each model's repo key, and what it is called in an error
REPO_KEYS = {
    "repo_id": "the dense embedder",
    "multivector_repo_id": "the multi-vector model",
    "reranker_repo_id": "the reranker",
}


class Publish(Section):
    push: bool = Field(description="Upload the published models to the Hub; false: a dry run.")
    repo_id: str = Field(description="The embedder's Hub repo, as owner/name.")
    private: bool = Field(description="Make the Hub repos private.")
    truncate_dim: Int | None = Field(None, ge=1, description="The published embedder's output size; null: full size.")
    multivector_repo_id: str | None = Field(None, description="The multi-vector model's Hub repo, as owner/name.")
    reranker_repo_id: str | None = Field(
        None, description="The reranker's Hub repo, as owner/name; null: the reranker is not pushed."
    )
    allow_dirty: bool = Field(
        False, description="Push from a working tree whose code differs from its git commit (the cards say so)."
    )

    @model_validator(mode="after")
    def _repo(self):
        if self.push and "/" not in self.repo_id:
            raise ValueError("push: true needs repo_id as 'owner/name'")
        if not self.push:
            return self
        taken = {self.repo_id: "repo_id"}
        for key in ("multivector_repo_id", "reranker_repo_id"):
            repo_id = getattr(self, key)
            if repo_id is None:
                continue
            if "/" not in repo_id:
                raise ValueError(f"push: true needs {key} as 'owner/name' (or null)")
            if repo_id in taken:
                other = taken[repo_id]
                raise ValueError(
                    f"{key}: {REPO_KEYS[key]} needs a repo of its own, not {other}'s, where {REPO_KEYS[other]} goes"
                )
            taken[repo_id] = key
        return self
