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
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.api.limits import TOO_LARGE_BODY
from chalicelib.deploy.provision import (
    API_FUNCTION,
    DB_UPDATE_FUNCTION,
    GC_FUNCTION,
    MAX_RECEIVES,
    PROJECT,
    SCAN_FUNCTION,
    chalice_config,
    function_names,
    scan_queues,
    stage_environment,
    stage_names,
)
from chalicelib.deploy.templates import QUEUE_URL_VARIABLE, policy_file, template_file

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
    assert handler["Environment"]["Variables"] == stage_environment(stage) | {QUEUE_URL_VARIABLE: {"Ref": "CveScanQueue"}}
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


@pytest.fixture(scope="module")
def expanded(cloudformation) -> tuple[str, dict[str, Any]]:
    """The SAM template as CloudFormation deploys it (the transform expands functions, events and the API)."""
    import boto3
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    stage, _, template = cloudformation
    template = json.loads(json.dumps(template))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/deployment.zip"  # what `aws cloudformation package` puts there
    return stage, transform(template, {}, NoManagedPolicies(), boto3.Session(region_name="us-east-1"))


def test_the_413_gateway_response_reaches_the_api_definition(expanded):
    """SAM turns GatewayResponses into the swagger's x-amazon-apigateway-gateway-responses, deployed with the API."""
    _, template = expanded
    (api,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    response = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]["REQUEST_TOO_LARGE"]
    assert response["statusCode"] == "413"
    assert response["responseTemplates"]["application/json"] == TOO_LARGE_BODY
    assert json.loads(TOO_LARGE_BODY)["errors"][0]["code"] == "SIZE_INVALID"


def test_cloudformation_has_the_scan_queue_and_its_dead_letter_queue(cloudformation):
    stage, _, template = cloudformation
    queues = scan_queues(stage)
    resources = template["Resources"]
    scans, dead = resources["CveScanQueue"], resources["CveScanDeadLetterQueue"]
    assert scans["Type"] == dead["Type"] == "AWS::SQS::Queue"
    assert (scans["Properties"]["QueueName"], dead["Properties"]["QueueName"]) == (queues.name, queues.dead_letter)
    redrive = scans["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": ["CveScanDeadLetterQueue", "Arn"]}, "maxReceiveCount": MAX_RECEIVES}
    assert scans["Properties"]["VisibilityTimeout"] >= 6 * _function_settings(stage, SCAN_FUNCTION)["lambda_timeout"]  # AWS's advice
    assert dead["Properties"]["MessageRetentionPeriod"] > scans["Properties"]["MessageRetentionPeriod"]
    assert template["Outputs"]["CveScanQueueUrl"]["Value"] == {"Ref": "CveScanQueue"}


def test_the_scan_function_is_fed_by_the_queue(expanded):
    """The SQS event becomes an event source mapping on the queue, created after the queue (the function depends on it)."""
    stage, template = expanded
    resources = template["Resources"]
    (mapping,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["Properties"]["FunctionName"] == {"Ref": "CveScan"} and mapping["Properties"]["BatchSize"] == 1
    assert mapping["Properties"]["EventSourceArn"]["Fn::Sub"].endswith(f":sqs:${{AWS::Region}}:${{AWS::AccountId}}:{scan_queues(stage).name}")
    function = resources["CveScan"]
    assert "CveScanQueue" in function["DependsOn"] and function["Properties"]["Handler"] == "app.cve_scan"


@pytest.mark.parametrize("function,logical_id,event", [(SCAN_FUNCTION, "CveScan", "SQS"), (DB_UPDATE_FUNCTION, "CveDbUpdate", "Schedule")])
def test_cloudformation_cve_functions_have_their_settings_and_policies(cloudformation, function: str, logical_id: str, event: str):
    stage, _, template = cloudformation
    properties = template["Resources"][logical_id]["Properties"]
    assert properties["FunctionName"] == function_names(stage)[function]
    assert [e["Type"] for e in properties["Events"].values()] == [event]
    settings = _function_settings(stage, function)
    assert (properties["MemorySize"], properties["Timeout"]) == (settings["lambda_memory_size"], settings["lambda_timeout"])
    assert QUEUE_URL_VARIABLE not in properties["Environment"]["Variables"], "only the API sends scans"
    role = template["Resources"][properties["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert [p["PolicyDocument"] for p in role["Policies"]] == [_policy(stage, function)]
    assert _policy(stage, function) != _policy(stage, API_FUNCTION)


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
    rules = resources["aws_cloudwatch_event_rule"].values()  # garbage_collect's, and cve_db_update's
    assert rules and all(rule["schedule_expression"].startswith("rate(") for rule in rules)
    for function in (SCAN_FUNCTION, DB_UPDATE_FUNCTION):
        settings = _function_settings(stage, function)
        lambda_function = resources["aws_lambda_function"][function]
        assert (lambda_function["memory_size"], lambda_function["timeout"]) == (settings["lambda_memory_size"], settings["lambda_timeout"])
        assert json.loads(policies[f"{function}_role"]["policy"]) == _policy(stage, function)
    (mapping,) = resources["aws_lambda_event_source_mapping"].values()  # the queue itself comes from `zotless init-aws` here
    assert mapping["event_source_arn"].endswith(f":{scan_queues(stage).name}") and mapping["batch_size"] == 1


def test_the_bundle_carries_the_search_schema(cloudformation):
    """chalicelib/search/gql.py loads zot's schema text from the package at the first search."""
    _, out, _ = cloudformation
    with zipfile.ZipFile(out / "deployment.zip") as bundle:
        assert "chalicelib/search/schema.graphql" in bundle.namelist()
