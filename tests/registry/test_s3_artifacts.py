"""Artifacts on an S3-compatible endpoint: train, load, tamper, all through s3://."""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

from amploop.errors import ArtifactError

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def test_train_and_evaluate_with_artifacts_on_s3(tmp_path, s3_endpoint):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env.update(s3_endpoint, AMPLOOP_HOME=str(tmp_path / ".amploop"), AMPLOOP_ARTIFACTS="s3://amploop-test/team")
    train = subprocess.run(
        [AMPLOOP, "train", "--dataset", "adult", "--epochs", "1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr
    uri = json.loads(train.stdout)["model"]["artifact_uri"]
    assert uri.startswith("s3://amploop-test/team/models/adult/")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint["AWS_ENDPOINT_URL"],
        aws_access_key_id="amploop-test",
        aws_secret_access_key="amploop-test",
        region_name="us-east-1",
    )
    key = uri.removeprefix("s3://amploop-test/") + "/model.safetensors"
    assert client.head_object(Bucket="amploop-test", Key=key)["ContentLength"] > 0
    evaluated = subprocess.run(
        [AMPLOOP, "evaluate", "adult", "--json"], capture_output=True, text=True, env=env, timeout=600
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["html_uri"].startswith("s3://amploop-test/team/models/adult/evaluations/")
    client.put_object(Bucket="amploop-test", Key=key, Body=b"not the weights")  # tampered in the bucket
    refused = subprocess.run([AMPLOOP, "evaluate", "adult"], capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == ArtifactError.exit_code
    assert "does not match the SHA-256 stored at registration" in refused.stderr
