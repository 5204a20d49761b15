"""One progress bar per long loop of a model, saying what it processes, how many, with which model, in which stage:

    evaluate: encoding 2,000 pages (models/embedder):  45%|████▌     | 900/2000 [00:10<00:12, 90.1page/s]

    with ModelProgress(f"encoding {len(pages):,} pages", model, len(pages), "page") as progress:
        for chunk in chunks:                                  # one bar over every call, however the pages are cut
            with progress.counting(len(chunk)):
                model.encode_document(chunk, batch_size=32, show_progress_bar=True)

sentence-transformers draws its own bar while it encodes or predicts, labelled only "Batches" (a process pool's:
"Chunks"), with no option for the label. Calling it a chunk at a time under a bar of our own would change which
inputs share a batch (it sorts all the inputs of a call by length before batching them), so the embeddings would
move to float tolerance and batches pad more. So inside `counting` the library's progress loop itself (`trange` in
its model modules, the one call its inference loops make to draw a bar) advances this bar instead, by the inputs each
of its steps covers: the same batches, the same results, one bar. A library without that loop keeps its own bar.
"""

from __future__ import annotations

import contextlib
import importlib
import sysconfig
from pathlib import Path
from unittest import mock

from tqdm import tqdm

from vdr.models.finite import model_name
from vdr.stage import progress_label

LIBRARY_MODULES = (  # each draws its bar with its module's `trange`
    "sentence_transformers.sentence_transformer.model",  # SentenceTransformer.encode*: "Batches"
    "sentence_transformers.multi_vector_encoder.model",  # MultiVectorEncoder.encode*: "Encoding documents"
    "sentence_transformers.cross_encoder.model",  # CrossEncoder.predict: "Batches"
    "sentence_transformers.base.model",  # any of them over a process pool: "Chunks", in this process
)


def shown_name(model) -> str:
    """The model as a bar names it: `pkg:<package>/<folder>` for a folder of an installed package (as params.yaml
    names it), a folder relative to the working directory, or else as it was loaded (a folder, a Hub id)."""
    name = model_name(model)
    path = Path(name)
    if not path.is_absolute():
        return name
    for packages in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}:
        if path.is_relative_to(packages):
            return f"pkg:{path.relative_to(packages).as_posix()}"
    return path.relative_to(Path.cwd()).as_posix() if path.is_relative_to(Path.cwd()) else name


class ModelProgress:
    """A bar labelled `<stage>: <what> (<model>)` counting `total` `unit`s; `counting(count)` for each library call
    over `count` of them. Closed when the `with` block ends."""

    def __init__(self, what: str, model, total: int, unit: str):
        self.bar = tqdm(total=total, desc=progress_label(f"{what} ({shown_name(model)})"), unit=unit)

    def __enter__(self) -> ModelProgress:
        return self

    def __exit__(self, *exception) -> None:
        self.bar.close()

    @contextlib.contextmanager
    def counting(self, count: int):
        """For the block, sentence-transformers' progress loop advances this bar across `count` inputs (one call of
        encode_query, encode_document or predict with show_progress_bar=True)."""
        with contextlib.ExitStack() as stack:
            for name in LIBRARY_MODULES:
                module = importlib.import_module(name)
                if hasattr(module, "trange"):
                    stack.enter_context(mock.patch.object(module, "trange", self._steps(count)))
            yield

    def _steps(self, count: int):
        """A stand-in for the library's `trange(start, stop, step, desc=..., disable=...)`: the same numbers; after
        each step the bar moves to the share of `count` the steps so far cover (a batch's inputs, or a pool's
        chunk's)."""

        def trange(*arguments, disable: bool = False, **_):
            steps = range(*arguments)
            done = 0
            for start in steps:
                yield start
                if not disable:
                    reached = round(count * min(start + steps.step, steps.stop) / steps.stop)
                    self.bar.update(reached - done)
                    done = reached

        return trange
