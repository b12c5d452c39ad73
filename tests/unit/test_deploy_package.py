"""`chalice package` in CloudFormation (with the merged resources) and Terraform, for every stage, offline.

The project is copied with an empty requirements.txt: chalice would otherwise download the Lambda
platform's wheels, and the templates do not depend on them. cfn-lint validates the CloudFormation
output (it expands the SAM transform), and the SAM translator shows the 413 gateway response lands
in the deployed API definition.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.api.limits import TOO_LARGE_BODY
from chalicelib.deploy.provision import API_FUNCTION, GC_FUNCTION, PROJECT, chalice_config, function_names, stage_environment, stage_names
from chalicelib.deploy.templates import policy_file, template_file

pytestmark = pytest.mark.process  # starts Python, chalice or cfn-lint processes

TIMEOUT = 120


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ZOTLESS_", "AWS_ENDPOINT_URL"))}
    environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="packaging", AWS_SECRET_ACCESS_KEY="packaging")
    return subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _chalice(*args: str, cwd: Path) -> None:
    result = _run([sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())", *args], cwd)
    assert result.returncode == 0, f"chalice {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app.py, chalicelib and .chalice (config and policies, no deployment caches), requirements left empty."""
    root = tmp_path_factory.mktemp("package")
    shutil.copy2(PROJECT / "app.py", root / "app.py")
    shutil.copytree(PROJECT / "chalicelib", root / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT / ".chalice", root / ".chalice", ignore=shutil.ignore_patterns("deployments", "venv"))
    (root / "requirements.txt").write_text("")
    return root


@pytest.fixture(scope="module", params=stage_names())
def cloudformation(request: pytest.FixtureRequest, project: Path) -> tuple[str, Path, dict[str, Any]]:
    stage = request.param
    merge = json.loads(template_file(stage).read_text())
    merge_path = project / f"merge-{stage}.json"
    merge_path.write_text(json.dumps(merge))
    out = project / f"cfn-{stage}"
    _chalice("package", "--stage", stage, "--merge-template", str(merge_path), str(out), cwd=project)
    return stage, out, json.loads((out / "sam.json").read_text())


@pytest.fixture(scope="module", params=stage_names())
def terraform(request: pytest.FixtureRequest, project: Path) -> tuple[str, dict[str, Any]]:
    stage = request.param
    out = project / f"tf-{stage}"
    _chalice("package", "--stage", stage, "--pkg-format", "terraform", str(out), cwd=project)
    return stage, json.loads((out / "chalice.tf.json").read_text())


def _policy(stage: str, function: str) -> dict[str, Any]:
    return json.loads(policy_file(stage, function).read_text())


def _function_settings(stage: str, function: str) -> dict[str, Any]:
    return chalice_config()["stages"][stage]["lambda_functions"][function]


def test_cfn_lint_passes(cloudformation):
    _, out, _ = cloudformation
    result = _run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(out / "sam.json")], out)
    assert result.returncode == 0, f"cfn-lint:\n{result.stdout}\n{result.stderr}"


def test_cloudformation_api_and_handler(cloudformation):
    stage, _, template = cloudformation
    resources = template["Resources"]
    api = resources["RestAPI"]["Properties"]
    assert api["DefinitionBody"]["x-amazon-apigateway-binary-media-types"] == ["*/*"]
    assert api["StageName"] == chalice_config()["api_gateway_stage"]
    handler = resources["APIHandler"]["Properties"]
    assert handler["FunctionName"] == function_names(stage)[API_FUNCTION]
    assert handler["Environment"]["Variables"] == stage_environment(stage)
    settings = _function_settings(stage, API_FUNCTION)
    assert (handler["MemorySize"], handler["Timeout"]) == (settings["lambda_memory_size"], settings["lambda_timeout"])
    role = resources[handler["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert [p["PolicyDocument"] for p in role["Policies"]] == [_policy(stage, API_FUNCTION)]


def test_cloudformation_has_the_bucket_and_tables(cloudformation):
    stage, _, template = cloudformation
    merged = json.loads(template_file(stage).read_text())["Resources"]
    for logical_id in ("RegistryBucket", "BlobTable", "RepoMetaTable", "UploadsTable"):
        assert template["Resources"][logical_id] == merged[logical_id]
    assert template["Resources"]["UploadsTable"]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}


def test_cloudformation_schedules_garbage_collection(cloudformation):
    stage, _, template = cloudformation
    gc = template["Resources"]["GarbageCollect"]["Properties"]
    assert gc["Handler"] == "app.garbage_collect"
    assert gc["FunctionName"] == function_names(stage)[GC_FUNCTION]
    assert [e["Type"] for e in gc["Events"].values()] == ["Schedule"]
    assert gc["Timeout"] == _function_settings(stage, GC_FUNCTION)["lambda_timeout"]
    role = template["Resources"][gc["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert [p["PolicyDocument"] for p in role["Policies"]] == [_policy(stage, GC_FUNCTION)]


def test_the_413_gateway_response_reaches_the_api_definition(cloudformation):
    """SAM turns GatewayResponses into the swagger's x-amazon-apigateway-gateway-responses, deployed with the API."""
    import boto3
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    _, _, template = cloudformation
    template = json.loads(json.dumps(template))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/deployment.zip"  # what `aws cloudformation package` puts there
    expanded = transform(template, {}, NoManagedPolicies(), boto3.Session(region_name="us-east-1"))
    (api,) = [r for r in expanded["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    response = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]["REQUEST_TOO_LARGE"]
    assert response["statusCode"] == "413"
    assert response["responseTemplates"]["application/json"] == TOO_LARGE_BODY
    assert json.loads(TOO_LARGE_BODY)["errors"][0]["code"] == "SIZE_INVALID"


def test_terraform(terraform):
    stage, template = terraform
    resources = template["resource"]
    assert resources["aws_api_gateway_rest_api"]["rest_api"]["binary_media_types"] == ["*/*"]
    handler = resources["aws_lambda_function"]["api_handler"]
    assert handler["function_name"] == function_names(stage)[API_FUNCTION]
    assert handler["environment"]["variables"] == stage_environment(stage)
    assert handler["memory_size"] == _function_settings(stage, API_FUNCTION)["lambda_memory_size"]
    policies = resources["aws_iam_role_policy"]
    assert json.loads(policies["api_handler_role"]["policy"]) == _policy(stage, API_FUNCTION)
    assert resources["aws_lambda_function"]["garbage_collect"]["timeout"] == _function_settings(stage, GC_FUNCTION)["lambda_timeout"]
    assert json.loads(policies["garbage_collect_role"]["policy"]) == _policy(stage, GC_FUNCTION)
    (rule,) = resources["aws_cloudwatch_event_rule"].values()
    assert rule["schedule_expression"].startswith("rate(")
