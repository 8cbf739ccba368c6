"""What the Lambda proxy records of each AWS call it passes on (GET
/_kiln/calls): one dict per request, from the request alone:

  key      the access key id of the SigV4 credential (Authorization header,
           or X-Amz-Credential of a presigned URL), or None
  service  the credential scope's signing service (ec2, ssm, states, s3, ...)
  region   the credential scope's region
  action   the operation: JSON protocols, X-Amz-Target after its last '.';
           query protocols (EC2, Auto Scaling, CloudWatch, STS, IAM, SQS
           query), the Action parameter; S3, derived from the method, the
           path and the query (PutObject, ListObjectsV2, GetBucketPolicy,
           ...); Lambda Invoke, InvokeFunction (its IAM action's name);
           Smithy RPC v2 CBOR, the path's operation; REST JSON operations
           kiln calls (REST_JSON), by signing service, method and path;
           otherwise None
  params   JSON protocols, the body's object; query protocols, the query and
           form parameters as a flat {name: value}; S3, {"Bucket", "Key"};
           Lambda Invoke, {"FunctionName"[, "Qualifier"]}; otherwise the
           body's JSON object, or {}
"""

import json
import re
import urllib.parse

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
RPC_V2_CBOR = re.compile(r"/service/[^/]+/operation/([^/?]+)$")
# REST JSON operations kiln calls: (signing service, method, path) -> name.
REST_JSON = {
    ("inspector-scan", "POST", "/scan/sbom"): "ScanSbom",
    ("inspector2", "POST", "/findings/list"): "ListFindings",
}

# S3 sub-resources (the query parameter) -> what follows Get/Put/Delete.
BUCKET_SUBRESOURCES = {
    "accelerate": "BucketAccelerateConfiguration", "acl": "BucketAcl",
    "analytics": "BucketAnalyticsConfiguration", "cors": "BucketCors",
    "encryption": "BucketEncryption", "intelligent-tiering": "BucketIntelligentTieringConfiguration",
    "inventory": "BucketInventoryConfiguration", "lifecycle": "BucketLifecycleConfiguration",
    "location": "BucketLocation", "logging": "BucketLogging", "metrics": "BucketMetricsConfiguration",
    "notification": "BucketNotificationConfiguration", "object-lock": "ObjectLockConfiguration",
    "ownershipControls": "BucketOwnershipControls", "policy": "BucketPolicy",
    "policyStatus": "BucketPolicyStatus", "publicAccessBlock": "PublicAccessBlock",
    "replication": "BucketReplication", "requestPayment": "BucketRequestPayment",
    "tagging": "BucketTagging", "versioning": "BucketVersioning", "website": "BucketWebsite",
}
OBJECT_SUBRESOURCES = {
    "acl": "ObjectAcl", "attributes": "ObjectAttributes", "legal-hold": "ObjectLegalHold",
    "retention": "ObjectRetention", "tagging": "ObjectTagging",
}
VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}
# Where S3's operation names break the pattern.
S3_SPECIAL = {
    ("bucket", "GET", "uploads"): "ListMultipartUploads",
    ("bucket", "GET", "versions"): "ListObjectVersions",
    ("bucket", "POST", "delete"): "DeleteObjects",
    ("bucket", "DELETE", "lifecycle"): "DeleteBucketLifecycle",
    ("object", "POST", "uploads"): "CreateMultipartUpload",
    ("object", "GET", "uploadId"): "ListParts",
    ("object", "POST", "uploadId"): "CompleteMultipartUpload",
    ("object", "DELETE", "uploadId"): "AbortMultipartUpload",
    ("object", "POST", "restore"): "RestoreObject",
    ("object", "POST", "select"): "SelectObjectContent",
}
S3_PLAIN = {
    ("bucket", "PUT"): "CreateBucket", ("bucket", "HEAD"): "HeadBucket",
    ("bucket", "DELETE"): "DeleteBucket", ("bucket", "POST"): "PostObject",
    ("object", "GET"): "GetObject", ("object", "HEAD"): "HeadObject",
    ("object", "DELETE"): "DeleteObject", ("object", "PUT"): "PutObject",
}


def json_object(body):
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def s3_action(method, bucket, key, query, headers):
    """The S3 operation of a REST request on `bucket` (and `key`)."""
    if not bucket:
        return "ListBuckets"
    level = "object" if key else "bucket"
    for name in query:
        special = S3_SPECIAL.get((level, method, name))
        if special:
            return special
        if level == "object" and name == "uploadId" and method == "PUT":
            return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
        noun = (OBJECT_SUBRESOURCES if key else BUCKET_SUBRESOURCES).get(name)
        if noun and method in VERBS:
            return VERBS[method] + noun
    if level == "bucket" and method == "GET":
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    if level == "object" and method == "PUT" and "x-amz-copy-source" in headers:
        return "CopyObject"
    return S3_PLAIN.get((level, method))


def s3_call(method, path, query, headers):
    host = (headers.get("Host") or "").rsplit(":", 1)[0]
    if host.endswith(".localhost"):  # virtual-hosted style
        bucket, key = host[: -len(".localhost")], path.lstrip("/")
    else:
        bucket, _, key = path.lstrip("/").partition("/")
    bucket, key = urllib.parse.unquote(bucket), urllib.parse.unquote(key)
    params = {"Bucket": bucket, "Key": key} if key else {"Bucket": bucket} if bucket else {}
    return s3_action(method, bucket, key, query, headers), params


def record(method, path, headers, body):
    """The record of one request: `headers` a case-insensitive mapping
    (http.client's message), `body` bytes."""
    url = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    presigned = dict(query).get("X-Amz-Credential", "")
    credential = CREDENTIAL.search(headers.get("Authorization") or "") or CREDENTIAL.search(
        f"Credential={presigned}")
    key, region, service = credential.groups() if credential else (None, None, None)
    invoke = INVOKE_PATH.match(url.path) if method == "POST" else None
    if invoke:
        action, params = "InvokeFunction", {"FunctionName": urllib.parse.unquote(invoke.group(1))}
        params.update({k: v for k, v in query if k == "Qualifier"})
    elif headers.get("X-Amz-Target"):
        action, params = headers["X-Amz-Target"].rsplit(".", 1)[-1], json_object(body)
    else:
        form = list(query)
        if "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
            form += urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
        params = dict(form)
        action = params.get("Action")
        if action is None and service == "s3":
            action, params = s3_call(method, url.path, dict(query), headers)
        elif action is None:
            rpc = RPC_V2_CBOR.search(url.path)
            action = rpc.group(1) if rpc else REST_JSON.get((service, method, url.path))
            params = {} if action else json_object(body)
    return {"key": key, "service": service, "region": region, "action": action, "params": params}
