"""Compose params.yaml from conf/ the way `dvc exp run -S profile=NAME` does (Hydra), and print it.

    python -m vdr.profiles blog                       # the blog profile's params, as YAML
    python -m vdr.profiles blog train_embedder.learning_rate=1e-5
    python -m vdr.profiles cpu --check params.yaml    # exit 1 unless params.yaml equals the composition

DVC composes only in `dvc exp run`; `dvc repro` reads params.yaml as it is, which is why the committed
params.yaml must stay equal to the default (cpu) composition.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose(profile: str, overrides: list[str] | None = None, conf: Path = CONF) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    profiles = sorted(p.stem for p in (conf / "profile").glob("*.yaml"))
    if profile not in profiles:
        raise ValueError(f"unknown profile '{profile}'; {conf / 'profile'} has {profiles}")
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        config = hydra_compose(config_name="config", overrides=[f"profile={profile}", *(overrides or [])])
    return OmegaConf.to_container(config, resolve=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as `dvc exp run -S` takes them")
    parser.add_argument("--check", type=Path, help="compare this params file with the composition instead of printing")
    args = parser.parse_args()
    composed = compose(args.profile, args.overrides)
    if args.check is None:
        print(yaml.safe_dump(composed, sort_keys=False), end="")
        return 0
    on_disk = yaml.safe_load(args.check.read_text())
    if on_disk != composed:
        keys = sorted(k for k in set(on_disk) | set(composed) if on_disk.get(k) != composed.get(k))
        print(f"{args.check} differs from conf/ (profile {args.profile}) in {keys}", file=sys.stderr)
        return 1
    print(f"{args.check} equals conf/ composed with profile={args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
