"""The cards' usage snippets: Python that runs as written against the published repo (tests/test_publish_card.py runs
each against the published folder, offline). A line `# ...` right after a `print(...)` is what that print shows."""

from __future__ import annotations

import json
from string import Template

FOLDERS = {  # where each model is published locally; a snippet names the folder when the model has no Hub repo
    "dense": "models/published",
    "reranker": "models/published_reranker",
    "multivector": "models/published_multivector",
}
EXAMPLE_QUERY = "how do I find the shortest path between two nodes of a graph"
EXAMPLE_PAGES = (  # a page that answers it, and one that does not
    "Shortest path algorithms: compute the shortest path from a source node to a target node of a weighted graph "
    "with Dijkstra's algorithm, and return the nodes along it.",
    "Read a comma-separated values (CSV) file into a DataFrame, one column per field of the file's header.",
)


DENSE = Template("""from sentence_transformers import SentenceTransformer
$imports
model = SentenceTransformer("$model_id")
queries = [$query]
pages = [$pages]
query_embeddings = model.encode_query(queries)
page_embeddings = model.encode_document(pages)
print(query_embeddings.shape, page_embeddings.shape)
# (1, $dims) (2, $dims)
similarities = model.similarity(query_embeddings, page_embeddings)  # $similarity, queries x pages
print(similarities.shape)
# torch.Size([1, 2])
$matryoshka""")


MATRYOSHKA = Template("""
# Matryoshka: the first $small dimensions are an embedding too, $ratio times smaller to store and faster to search
small = SentenceTransformer("$model_id", truncate_dim=$small)
print(small.encode_query(queries).shape)
# (1, $small)
""")


RERANKER = Template("""from sentence_transformers import CrossEncoder
$imports
model = CrossEncoder("$model_id")
query = $query
pages = [$pages]
scores = model.predict([(query, page) for page in pages])  # one score per (query, page) pair, higher: more relevant
print(scores.shape)
# (2,)
ranking = model.rank(query, pages)  # the pages' indices, best first, with their scores
print(len(ranking), sorted(ranking[0]))
# 2 ['corpus_id', 'score']
""")


MULTIVECTOR = Template("""from sentence_transformers import MultiVectorEncoder
$imports
model = MultiVectorEncoder("$model_id")
queries = [$query]
pages = [$pages]
query_embeddings = model.encode_query(queries)  # one array of token vectors per query
page_embeddings = model.encode_document(pages)
print(query_embeddings[0].shape[1], page_embeddings[0].shape[1])
# $dims $dims
scores = model.similarity(query_embeddings, page_embeddings)  # MaxSim
print(scores.shape)
# torch.Size([1, 2])
""")


def inputs(params) -> dict:
    """The example query and pages as Python source: the texts of EXAMPLE_PAGES, or two page screenshots (PIL
    images) for a model that reads pages as images."""
    if params.models.page_input == "image":
        return {
            "imports": "from PIL import Image  # page screenshots\n",
            "query": json.dumps(EXAMPLE_QUERY),
            "pages": 'Image.open("page_1.png"), Image.open("page_2.png")',
        }
    pages = ",\n    ".join(json.dumps(page) for page in EXAMPLE_PAGES)
    return {"imports": "", "query": json.dumps(EXAMPLE_QUERY), "pages": f"\n    {pages},\n"}


def dense_usage(params, dims: int, similarity: str) -> str:
    """encode_query / encode_document at the published size `dims`, similarity, and a smaller Matryoshka size."""
    model_id = params.publish.repo_id or FOLDERS["dense"]
    smaller = [dim for dim in params.train_embedder.matryoshka_dims if dim < dims]
    matryoshka = ""
    if smaller:
        small = min(smaller)
        matryoshka = MATRYOSHKA.substitute(model_id=model_id, small=small, ratio=f"{dims / small:g}")
    return DENSE.substitute(
        model_id=model_id, dims=dims, similarity=similarity, matryoshka=matryoshka, **inputs(params)
    )


def reranker_usage(params) -> str:
    """predict on (query, page) pairs, and rank."""
    return RERANKER.substitute(model_id=params.publish.reranker_repo_id or FOLDERS["reranker"], **inputs(params))


def multivector_usage(params) -> str:
    """encode_query / encode_document as token vectors, MaxSim."""
    model_id = params.publish.multivector_repo_id or FOLDERS["multivector"]
    return MULTIVECTOR.substitute(model_id=model_id, dims=params.late_interaction.projection_dim, **inputs(params))
