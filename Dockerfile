# The pipeline on a GPU box: the pipeline's lock file (requirements.lock; the test and lint tools of
# requirements-dev.lock stay out of the image), Python 3.11, CUDA from the torch wheels (the base image
# brings the NVIDIA container setup and the driver check). CUDA 13 needs NVIDIA driver 580 or newer on the
# host (`nvidia-smi` prints it); `python benchmarks/gpu_check.py` stops with that sentence on an older one.
#
#   docker build -t vdr .
#   docker run --rm --gpus all --ipc=host -v vdr-hf:/cache/huggingface -e HF_TOKEN \
#       -v "$PWD":/workspace vdr dvc exp run -S profile=blog -S models.model_kwargs.attn_implementation=sdpa
#
# The base image is pinned by tag and digest. To move to a newer one:
#   docker buildx imagetools inspect nvidia/cuda:<tag> --format '{{json .Manifest.Digest}}'
# then build with --build-arg CUDA_IMAGE=nvidia/cuda:<tag>@sha256:<digest> (and update the default here).
ARG CUDA_IMAGE=nvidia/cuda:13.0.3-base-ubuntu22.04@sha256:73ab6dfb3814a5097cd456736e70650ef9dc72343be4117d0400de78168760fe
FROM ${CUDA_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface

# 1. System packages: Python 3.11, git (DVC experiments are git commits) and tesseract-ocr (text
#    models read image-only pages through OCR). Their versions follow the base image's release;
#    everything else that decides a result is pinned by requirements.lock.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv git ca-certificates tesseract-ocr \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv "$VIRTUAL_ENV"

# 2. Dependencies: the run-time lock file, in its own layer so that code changes do not reinstall torch
COPY requirements.lock /tmp/requirements.lock
RUN pip install -r /tmp/requirements.lock && rm /tmp/requirements.lock

# 3. git for a mounted checkout owned by another user, and an identity for `dvc exp run` commits
#    (system-wide, so it holds for any --user)
RUN git config --system safe.directory '*' \
    && git config --system user.name "vdr" \
    && git config --system user.email "vdr@localhost" \
    && git config --system init.defaultBranch main

# 4. The project, installed editable at /workspace: a checkout mounted over /workspace is the code
#    that runs. Without a mount, the copied source runs the embedded default.
WORKDIR /workspace
COPY pyproject.toml README.md params.yaml dvc.yaml dvc.lock .dvcignore ./
COPY .dvc/config .dvc/config
COPY vdr vdr
COPY stages stages
RUN pip install --no-deps -e . \
    && dvc config --local core.no_scm true

# 5. A non-root user (uid 1000, named vdr); the Hugging Face cache lives on a volume
RUN useradd --create-home --uid 1000 vdr \
    && mkdir -p "$HF_HOME" \
    && chown -R vdr:vdr "$HF_HOME" /workspace
VOLUME ["/cache/huggingface"]
USER 1000:1000

CMD ["dvc", "repro"]
