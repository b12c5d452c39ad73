"""The function URL front door in `chalice package` output: present where the stage asks for it, valid for cfn-lint.

The packaging fixtures are test_deploy_package.py's (one `chalice package` per stage, merged template
included); this module adds what the function URL must look like once merged.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from chalicelib.deploy.templates import function_url_enabled
from tests.unit.test_deploy_package import _run, cloudformation, project  # noqa: F401  fixtures shared with the package tests

pytestmark = pytest.mark.process  # packages with chalice and runs cfn-lint


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_the_function_url_is_where_the_stage_asks_for_it(cloudformation):  # noqa: F811
    stage, _, template = cloudformation
    urls = _of_type(template, "AWS::Lambda::Url")
    if not function_url_enabled(stage):
        assert urls == {} and "FunctionUrl" not in template.get("Outputs", {})
        return
    (url,) = urls.values()
    target = url["Properties"]["TargetFunctionArn"]
    assert target == {"Fn::GetAtt": ["APIHandler", "Arn"]} and template["Resources"]["APIHandler"]["Type"] == "AWS::Serverless::Function"
    assert url["Properties"]["AuthType"] == "NONE"  # the registry's own auth answers, as behind API Gateway
    permissions = {
        p["Properties"]["Action"]: p["Properties"] for p in _of_type(template, "AWS::Lambda::Permission").values() if p["Properties"]["FunctionName"] == target
    }
    assert permissions["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert permissions["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True  # never a public direct invoke
    assert template["Outputs"]["FunctionUrl"]["Value"] == {"Fn::GetAtt": ["APIHandlerUrl", "FunctionUrl"]}
    assert "RestAPI" in template["Resources"]  # as well as, not instead of: the REST door keeps working


def test_dev_offers_the_function_url_and_prod_keeps_api_gateway_alone():
    """The choice is per stage: dev tries the cheaper door, prod keeps what API Gateway adds until its operator switches."""
    assert function_url_enabled("dev") and not function_url_enabled("prod")


def test_cfn_lint_passes_with_the_function_url(cloudformation):  # noqa: F811
    stage, out, template = cloudformation
    if not function_url_enabled(stage):
        return
    assert _of_type(template, "AWS::Lambda::Url")
    result = _run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(out / "sam.json")], out)
    assert result.returncode == 0, f"cfn-lint:\n{result.stdout}\n{result.stderr}"
