#!/usr/bin/env python3
"""Deploy template.yaml to the local AWS emulator and print the stack's outputs.

The local stack's tables, queues and functions come from the same template that
production deploys, so the two cannot drift: the template is expanded from SAM
to CloudFormation with samtranslator (what `sam deploy` does in AWS) and created
through the emulator's CloudFormation API.

Two things differ from AWS, both forced by running without Docker:
- CodeUri points at a zip of the locally built bootstrap uploaded to the
  emulator's S3 (AWS would get the zip from `sam deploy`'s own upload);
- event-source mappings are created disabled: the emulator would otherwise try
  to run the function itself (in Docker), and the local poller plays the
  mapping instead, reading its settings (batch size, ReportBatchItemFailures)
  from the emulator's Lambda API.

The stack is named NAME-<hash of the template>, so a changed template gets a
stack of its own.

Usage: provision.py --template template.yaml --stack NAME --code-dir DIR --out FILE
where DIR holds <LogicalId>/bootstrap for every function. FILE receives the
stack's outputs, each function's deployed settings and its event-source mappings.
"""

import argparse
import copy
import hashlib
import io
import json
import os
import sys
import time
import zipfile

import boto3
from botocore.exceptions import ClientError
from cfnlint.data import Serverless
from cfnlint.decode import decode
from cfnlint.decode.utils import convert_dict
from cfnlint.helpers import load_resource
from samtranslator.parser import parser
from samtranslator.translator.translator import Translator

CODE_BUCKET = "ct-webhooks-local-code"


def fail(msg):
    print(f"provision: {msg}", file=sys.stderr)
    sys.exit(1)


def load_template(path):
    template, matches = decode(path)
    if matches or template is None:
        fail(f"cannot read {path}: " + "; ".join(str(m) for m in matches))
    return template


def upload_code(s3, stack, code_dir, functions):
    """Zip each function's bootstrap into the emulator's S3; return {logical id: s3 uri}."""
    try:
        s3.create_bucket(Bucket=CODE_BUCKET)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    uris = {}
    for logical_id in functions:
        path = os.path.join(code_dir, logical_id, "bootstrap")
        if not os.path.isfile(path):
            fail(f"{path} is missing: build the functions first (make build-local)")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            with open(path, "rb") as f:
                z.writestr(info, f.read())
        key = f"{stack}/{logical_id}.zip"
        s3.put_object(Bucket=CODE_BUCKET, Key=key, Body=buf.getvalue())
        uris[logical_id] = f"s3://{CODE_BUCKET}/{key}"
    return uris


def translate(template, code_uris, region, for_emulator=True):
    sam = copy.deepcopy(template)
    for logical_id, res in sam.get("Resources", {}).items():
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = code_uris[logical_id]
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    policies = load_resource(Serverless, "ManagedPolicies.json")
    cfn = Translator(policies, parser.Parser()).translate(
        sam_template=convert_dict(sam), parameter_values={}
    )
    if for_emulator:
        # The local poller plays the mappings (see the module's docstring).
        for res in cfn["Resources"].values():
            if res["Type"] == "AWS::Lambda::EventSourceMapping":
                res["Properties"]["Enabled"] = False
    return cfn


def deploy(cfn_client, stack, body):
    """Create the stack unless it exists already. The stack name carries a hash
    of the template (see main), so an existing stack has exactly these
    resources: an emulator that outlives one run keeps its data, and a changed
    template gets a fresh stack instead of an in-place update, which the
    emulator does not apply reliably."""
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    try:
        cfn_client.describe_stacks(StackName=stack)
    except ClientError:
        cfn_client.create_stack(StackName=stack, TemplateBody=json.dumps(body), Capabilities=caps)
    return wait(cfn_client, stack, ("CREATE_COMPLETE", "UPDATE_COMPLETE"))


def wait(cfn_client, stack, done, gone_ok=False):
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            s = cfn_client.describe_stacks(StackName=stack)["Stacks"][0]
        except ClientError:
            if gone_ok:
                return None
            raise
        status = s["StackStatus"]
        if status in done:
            return s
        if status.endswith("FAILED") or status.endswith("ROLLBACK_COMPLETE"):
            events = cfn_client.describe_stack_events(StackName=stack)["StackEvents"]
            reasons = [
                f'{e["LogicalResourceId"]}: {e.get("ResourceStatusReason")}'
                for e in events
                if e.get("ResourceStatus", "").endswith("FAILED")
            ]
            fail(f"stack {stack} is {status}: " + "; ".join(reasons))
        time.sleep(0.5)
    fail(f"stack {stack} did not reach {done} within 120 s")


def http_api_routes(template):
    """The HttpApi routes of each function, for the local gateway: the emulator
    does not implement API Gateway v2, so the gateway routes as the template says."""
    routes = []
    for logical_id, res in template.get("Resources", {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (res.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                props = event.get("Properties", {})
                # No path and no method: API Gateway's $default route.
                routes.append({"Function": logical_id, "Method": props.get("Method", "ANY"), "Path": props.get("Path", "$default")})
    return routes


def describe_functions(session, endpoint, stack, cfn):
    """What the local runner needs to play Lambda: each function's settings as
    deployed (environment, timeout, memory) and its event-source mappings, each
    with the visibility timeout the template gives its queue."""
    cfn_client = session.client("cloudformation", endpoint_url=endpoint)
    lam = session.client("lambda", endpoint_url=endpoint)
    functions, mappings = {}, []
    resources = [
        r
        for page in cfn_client.get_paginator("list_stack_resources").paginate(StackName=stack)
        for r in page["StackResourceSummaries"]
    ]
    # A queue's physical id is its URL (AWS) or its name (some emulators):
    # either way it ends with the name, as the queue's ARN does.
    visibility = {
        r["PhysicalResourceId"].rstrip("/").rsplit("/", 1)[-1]: int(
            cfn["Resources"].get(r["LogicalResourceId"], {}).get("Properties", {}).get("VisibilityTimeout", 30)
        )
        for r in resources
        if r["ResourceType"] == "AWS::SQS::Queue"
    }
    for r in resources:
        if r["ResourceType"] != "AWS::Lambda::Function":
            continue
        conf = lam.get_function_configuration(FunctionName=r["PhysicalResourceId"])
        env = conf.get("Environment", {}).get("Variables", {})
        functions[r["LogicalResourceId"]] = {
            "FunctionName": conf["FunctionName"],
            "Timeout": conf["Timeout"],
            "MemorySize": conf["MemorySize"],
            "Environment": {k: str(v) for k, v in env.items()},
        }
        own = (
            m
            for page in lam.get_paginator("list_event_source_mappings").paginate(FunctionName=conf["FunctionName"])
            for m in page["EventSourceMappings"]
            if m["FunctionArn"] == conf["FunctionArn"]
        )
        for m in own:
            mappings.append(
                {
                    "Function": r["LogicalResourceId"],
                    "EventSourceArn": m["EventSourceArn"],
                    "BatchSize": m.get("BatchSize", 10),
                    "MaximumBatchingWindowInSeconds": m.get("MaximumBatchingWindowInSeconds", 0),
                    "FunctionResponseTypes": m.get("FunctionResponseTypes", []),
                    "MaximumConcurrency": m.get("ScalingConfig", {}).get("MaximumConcurrency", 0),
                    "VisibilityTimeout": visibility.get(m["EventSourceArn"].rsplit(":", 1)[-1], 0),
                }
            )
    return functions, mappings


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", default="template.yaml")
    ap.add_argument("--stack")
    ap.add_argument("--code-dir")
    ap.add_argument("--out", required=True, help="where to write the outputs JSON")
    ap.add_argument(
        "--translate-only",
        action="store_true",
        help="only expand the template to CloudFormation (what `sam deploy` submits) and write it to --out",
    )
    args = ap.parse_args()

    if args.translate_only:
        template = load_template(args.template)
        uris = {
            k: f"s3://example-bucket/{k}.zip"
            for k, v in template.get("Resources", {}).items()
            if v.get("Type") == "AWS::Serverless::Function"
        }
        cfn = translate(template, uris, os.environ.get("AWS_REGION", "us-east-1"), for_emulator=False)
        write_json(args.out, cfn)
        print(f"{args.template}: SAM transform produced {len(cfn['Resources'])} CloudFormation resources")
        return
    if not args.stack or not args.code_dir:
        fail("--stack and --code-dir are required")

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        fail("AWS_ENDPOINT_URL is not set; refusing to deploy the local stack to real AWS")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = boto3.session.Session(region_name=region)

    template = load_template(args.template)
    functions = [
        k for k, v in template.get("Resources", {}).items() if v.get("Type") == "AWS::Serverless::Function"
    ]
    digest = hashlib.sha256(
        json.dumps(translate(template, {f: f"s3://{CODE_BUCKET}/{f}.zip" for f in functions}, region), sort_keys=True).encode()
    ).hexdigest()[:8]
    name = f"{args.stack}-{digest}"
    uris = upload_code(session.client("s3", endpoint_url=endpoint), name, args.code_dir, functions)
    cfn = translate(template, uris, region)
    stack = deploy(session.client("cloudformation", endpoint_url=endpoint), name, cfn)
    args.stack = name

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    functions, mappings = describe_functions(session, endpoint, args.stack, cfn)
    result = {
        "StackName": args.stack,
        "Outputs": outputs,
        "Functions": functions,
        "EventSourceMappings": mappings,
        "HttpApiRoutes": http_api_routes(template),
    }
    write_json(args.out, result)


def write_json(path, value):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
