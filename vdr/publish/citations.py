"""The cards' citation section: BibTeX for the library, the losses a model was trained with (the entries
sentence-transformers' own cards give for them: each loss's `citation`, checked by tests/test_publish_card.py), the
methods it uses, and the recipe the pipeline follows."""

from __future__ import annotations

SENTENCE_BERT = """@inproceedings{reimers-2019-sentence-bert,
    title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2019",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/1908.10084",
}"""

MATRYOSHKA = """@misc{kusupati2024matryoshka,
    title={Matryoshka Representation Learning},
    author={Aditya Kusupati and Gantavya Bhatt and Aniket Rege and Matthew Wallingford and Aditya Sinha and Vivek Ramanujan and William Howard-Snyder and Kaifeng Chen and Sham Kakade and Prateek Jain and Ali Farhadi},
    year={2024},
    eprint={2205.13147},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}"""  # noqa: E501 (BibTeX keeps an author list on one line)

CONTRASTIVE = """@misc{oord2019representationlearningcontrastivepredictive,
      title={Representation Learning with Contrastive Predictive Coding},
      author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
      year={2019},
      eprint={1807.03748},
      archivePrefix={arXiv},
      primaryClass={cs.LG},
      url={https://arxiv.org/abs/1807.03748},
}"""

GRADCACHE = """@misc{gao2021scaling,
    title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author={Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan},
    year={2021},
    eprint={2101.06983},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}"""

IN_BATCH_NEGATIVES = """@misc{henderson2017efficient,
    title={Efficient Natural Language Response Suggestion for Smart Reply},
    author={Matthew Henderson and Rami Al-Rfou and Brian Strope and Yun-hsuan Sung and Laszlo Lukacs and Ruiqi Guo and Sanjiv Kumar and Balint Miklos and Ray Kurzweil},
    year={2017},
    eprint={1705.00652},
    archivePrefix={arXiv},
    primaryClass={cs.CL}
}"""  # noqa: E501

COLBERT = """@misc{khattab2020colbert,
    title={ColBERT: Efficient and Effective Passage Search via Contextualized Late Interaction over BERT},
    author={Omar Khattab and Matei Zaharia},
    year={2020},
    eprint={2004.12832},
    archivePrefix={arXiv},
    primaryClass={cs.IR}
}"""

LORA = """@misc{hu2021lora,
    title={LoRA: Low-Rank Adaptation of Large Language Models},
    author={Edward J. Hu and Yelong Shen and Phillip Wallis and Zeyuan Allen-Zhu and Yuanzhi Li and Shean Wang and Lu Wang and Weizhu Chen},
    year={2021},
    eprint={2106.09685},
    archivePrefix={arXiv},
    primaryClass={cs.CL}
}"""  # noqa: E501

RECIPE = """@misc{aarsen2026multimodal,
    title={Training and Finetuning Multimodal Embedding \\& Reranker Models with Sentence Transformers},
    author={Tom Aarsen},
    year={2026},
    month={apr},
    howpublished={Hugging Face blog},
    url={https://huggingface.co/blog/train-multimodal-sentence-transformers}
}"""

LOSSES = {  # a loss's class name: its BibTeX, as the loss's `citation` gives it (BinaryCrossEntropyLoss gives none)
    "MatryoshkaLoss": MATRYOSHKA,
    "MultipleNegativesRankingLoss": CONTRASTIVE,
    "CachedMultipleNegativesRankingLoss": GRADCACHE,
    "MultiVectorMultipleNegativesRankingLoss": IN_BATCH_NEGATIVES,
    "CachedMultiVectorMultipleNegativesRankingLoss": GRADCACHE,
}


def citations_section(losses: list[str], methods: dict[str, str] | None = None) -> str:
    """Markdown: Sentence Transformers, each of `losses` that has an entry, the `methods` ({name: BibTeX}) and the
    recipe; an entry that several names share is given once, under all of them."""
    entries: dict[str, list[str]] = {SENTENCE_BERT: ["Sentence Transformers"]}
    for name, bibtex in [(loss, LOSSES[loss]) for loss in losses if loss in LOSSES] + list((methods or {}).items()):
        entries.setdefault(bibtex, []).append(name)
    entries.setdefault(RECIPE, []).append("The recipe")
    blocks = [f"#### {' and '.join(names)}\n\n```bibtex\n{bibtex}\n```\n" for bibtex, names in entries.items()]
    return "## Citation\n\n### BibTeX\n\n" + "\n".join(blocks)
