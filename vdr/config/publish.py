"""The `publish` section: where the models go on the Hub, and whether they are pushed at all."""

from __future__ import annotations

from pydantic import Field, model_validator

from vdr.config.section import Section


class Publish(Section):
    push: bool = Field(description="Upload the published models to the Hub; false: a dry run.")
    repo_id: str = Field(description="The embedder's Hub repo, as owner/name.")
    private: bool = Field(description="Make the Hub repos private.")
    truncate_dim: int | None = Field(None, ge=1, description="The published embedder's output size; null: full size.")
    multivector_repo_id: str | None = Field(None, description="The multi-vector model's Hub repo, as owner/name.")

    @model_validator(mode="after")
    def _repo(self):
        if self.push and "/" not in self.repo_id:
            raise ValueError("push: true needs repo_id as 'owner/name'")
        if self.push and self.multivector_repo_id is not None:
            if "/" not in self.multivector_repo_id:
                raise ValueError("push: true needs multivector_repo_id as 'owner/name' (or null)")
            if self.multivector_repo_id == self.repo_id:
                raise ValueError(
                    "multivector_repo_id: the multi-vector model needs a repo of its own, not repo_id's, where the "
                    "dense embedder goes"
                )
        return self
