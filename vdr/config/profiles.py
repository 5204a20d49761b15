"""Compose params.yaml from conf/ exactly as `dvc exp run` does (Hydra), and print, write or check it.

    python -m vdr.config.profiles blog                          # the blog profile's params.yaml, as DVC writes it
    python -m vdr.config.profiles blog train_embedder.learning_rate=1e-5
    python -m vdr.config.profiles cpu --write params.yaml       # regenerate the committed params.yaml after editing
    conf/ python -m vdr.config.profiles cpu --check params.yaml       # exit 1 unless params.yaml is byte for byte the
    composition

With `[hydra] enabled = true` in .dvc/config, every `dvc exp run` composes conf/ and overwrites params.yaml
through DVC's own `dvc.utils.hydra.compose_and_dump` (called from the experiment queue's `_update_params`),
which writes OmegaConf's YAML: no comments, block-style lists, `2.0e-05`. This module calls that same
function with the same arguments, so the committed params.yaml is byte for byte what an experiment writes
for the default profile, and an experiment leaves it unchanged unless a `-S` changed a value. `dvc repro`
reads params.yaml as it is. What a key means: docs/params.md; why a profile chose a value: its comments in conf/.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


REGENERATE = "python -m vdr.config.profiles {profile} --write {path}"


def dvc_hydra_arguments(root: Path = ROOT) -> dict:
    """The arguments DVC passes to compose_and_dump for params.yaml, derived from the repository's DVC config
    the way dvc/repo/experiments/queue/base.py `_update_params` derives them."""
    from dvc.config import Config

    hydra_config = Config(dvc_dir=str(root / ".dvc"))["hydra"]
    if (config_module := hydra_config.get("config_module")) is None:
        config_dir = os.path.join(root, hydra_config.get("config_dir", "conf"))
    else:
        config_dir = None
    return {
        "config_dir": config_dir,
        "config_module": config_module,
        "config_name": hydra_config.get("config_name", "config"),
        "plugins_path": os.path.join(root, hydra_config.get("plugins_path", "")),
    }


def profiles(root: Path = ROOT) -> list[str]:
    config_dir = dvc_hydra_arguments(root)["config_dir"]
    return sorted(p.stem for p in (Path(config_dir) / "profile").glob("*.yaml"))


def compose_text(profile: str | None, overrides: list[str] | None = None, root: Path = ROOT) -> str:
    """params.yaml as `dvc exp run -S profile=PROFILE -S OVERRIDE ...` writes it (None: a plain `dvc exp run`)."""
    from dvc.utils.hydra import compose_and_dump

    if profile is not None and profile not in (known := profiles(root)):
        raise ValueError(f"unknown profile '{profile}'; {root / 'conf' / 'profile'} has {known}")
    hydra_overrides = ([] if profile is None else [f"profile={profile}"]) + list(overrides or [])
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "params.yaml"
        compose_and_dump(output, overrides=hydra_overrides, **dvc_hydra_arguments(root))
        return output.read_text(encoding="utf-8")


def compose(profile: str, overrides: list[str] | None = None, root: Path = ROOT) -> dict:
    """The composed params as the stages read them (yaml.safe_load of the file DVC would write)."""
    return yaml.safe_load(compose_text(profile, overrides, root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as `dvc exp run -S` takes them")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", type=Path, help="exit 1 unless this file is byte for byte the composition")
    mode.add_argument("--write", type=Path, help="write the composition to this file, byte for byte as DVC would")
    args = parser.parse_args(argv)
    composed = compose_text(args.profile, args.overrides)
    if args.write is not None:
        args.write.write_text(composed, encoding="utf-8")
        print(f"wrote {args.write}: conf/ composed with profile={args.profile}", file=sys.stderr)
        return 0
    if args.check is None:
        print(composed, end="")
        return 0
    on_disk = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
    if on_disk != composed:
        diff = difflib.unified_diff(
            on_disk.splitlines(keepends=True),
            composed.splitlines(keepends=True),
            str(args.check),
            f"conf/ (profile={args.profile})",
        )
        sys.stderr.writelines(diff)
        regenerate = REGENERATE.format(profile=" ".join([args.profile, *args.overrides]), path=args.check)
        print(f"{args.check} is not what `dvc exp run` composes; regenerate it: `{regenerate}`", file=sys.stderr)
        return 1
    print(f"{args.check} is byte for byte conf/ composed with profile={args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
