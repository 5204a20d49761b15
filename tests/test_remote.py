"""The DVC remote round trip: push, lose the cache and the workspace copy, pull, get the same bytes back.

Once against the default remote committed in .dvc/config (a local folder, no credentials) and once
against an S3 API (moto's server on 127.0.0.1, reached through dvc-s3 with `endpointurl`).
"""

import shutil

import pyarrow as pa
import pytest

from tests.support.repo import REPO, commit_all, run
from vdr.io.tables import write_shards

pytestmark = pytest.mark.e2e  # dvc push and pull, a moto S3 server


@pytest.fixture
def shard_repo(tmp_path, stage_env):
    """A git + DVC repo with the project's .dvc/config, .gitignore and .dvcignore,
    and a `dvc add`ed folder of Parquet shards."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo, stage_env)
    run(["dvc", "init", "-q"], repo, stage_env)
    for name in (".dvc/config", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    rows = [{"id": f"page-{i}", "image": bytes([i % 256]) * (100 + i), "text": f"page {i} text"} for i in range(40)]
    schema = pa.schema([("id", pa.string()), ("image", pa.binary()), ("text", pa.string())])
    write_shards(repo / "shards", rows, schema, shard_size=16)
    run(["dvc", "add", "-q", "shards"], repo, stage_env)
    commit_all(repo, stage_env, "shards")
    return repo


@pytest.fixture
def s3_endpoint(stage_env):
    """An S3 API on 127.0.0.1 (moto) with one bucket; credentials only in the environment, as for a real bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    stage_env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="vdr-dvc")
    yield endpoint
    server.stop()


def snapshot(folder):
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def round_trip(repo, env, expected_storage=None):
    before = snapshot(repo / "shards")
    assert len(before) == 3  # 40 rows in shards of 16
    run(["dvc", "push"], repo, env)
    if expected_storage is not None:
        assert any(path.is_file() for path in expected_storage.rglob("*")), f"nothing was pushed to {expected_storage}"

    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "shards")
    assert "not in cache" in run(["dvc", "status"], repo, env)

    run(["dvc", "pull"], repo, env)
    assert "up to date" in run(["dvc", "status"], repo, env)
    assert "are in sync" in run(["dvc", "status", "--cloud"], repo, env)
    assert snapshot(repo / "shards") == before


def test_default_local_remote_round_trip(shard_repo, stage_env):
    # read from the config, not `dvc remote list`, whose table wraps a long path at the terminal's width
    assert run(["dvc", "config", "core.remote"], shard_repo, stage_env).strip() == "storage"
    url = run(["dvc", "config", "remote.storage.url"], shard_repo, stage_env).strip()
    assert url == str(shard_repo / "dvc-storage")
    round_trip(shard_repo, stage_env, expected_storage=shard_repo / "dvc-storage")
    # the remote's folder is neither committed by git nor walked by DVC
    assert "dvc-storage" not in run(["git", "status", "--porcelain", "--ignored=no"], shard_repo, stage_env)


def test_s3_remote_round_trip(shard_repo, stage_env, s3_endpoint):
    run(["dvc", "remote", "add", "-d", "s3", "s3://vdr-dvc/store"], shard_repo, stage_env)
    run(["dvc", "remote", "modify", "s3", "endpointurl", s3_endpoint], shard_repo, stage_env)
    round_trip(shard_repo, stage_env)
    assert not (shard_repo / "dvc-storage").exists()  # everything went to S3
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    keys = [item["Key"] for item in client.list_objects_v2(Bucket="vdr-dvc", Prefix="store/")["Contents"]]
    assert len(keys) == 4  # three shards and the folder's .dir listing
