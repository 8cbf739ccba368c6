"""Amazon Inspector's ScanSbom (the inspector-scan API). moto has no
inspector-scan: a request signed for it reaches no backend. This patch
answers `POST /scan/sbom` as AWS documents it, from advisories a test
registers, since the emulator has no vulnerability database.

`POST /moto-api/kiln/advisories` with one advisory
`{"id": "CVE-...", "package": NAME, "fixed": VERSION or null, "severity":
"critical"|"high"|"medium"|"low", "cvss": SCORE, "exploit_available": BOOL,
"introduced": VERSION (optional)}` makes every later scan find `id` in each
Debian component named NAME whose version (epoch included) is at least
`introduced` and below `fixed` (any version when null), compared as dpkg
compares versions.

What the patch enforces, as AWS documents:
  * the request's `sbom` is required and must be a CycloneDX 1.5 document,
    with at most 5,000 components: otherwise ValidationException (400);
  * `outputFormat` is CYCLONE_DX_1_5, INSPECTOR or INSPECTOR_ALT; only
    CYCLONE_DX_1_5 (taken when none is given) is emulated, the others are
    answered 501 so that a test cannot pass on a format the emulator
    does not speak.
The report is AWS's CycloneDX 1.5 output: components renamed `comp-N`, the
severity counts in `metadata.properties`, and per vulnerability its `id`,
`ratings` (`source.name` NVD, `method` CVSSv31), `affects[].ref` and the
`amazon:inspector:sbom_scanner:exploit_available` and
`...:fixed_version:<ref>` properties.

AWS documentation:
  * Amazon Inspector API Reference, ScanSbom (request and response syntax;
    "a maximum of 5,000 components per request"; ValidationException):
    https://docs.aws.amazon.com/inspector/v2/APIReference/API_scan_ScanSbom.html
  * Amazon Inspector User Guide, "Using CycloneDX namespaces with Amazon
    Inspector" (the amazon:inspector:sbom_scanner properties):
    https://docs.aws.amazon.com/inspector/latest/user/cyclonedx-namespace.html
  * Amazon Inspector User Guide, "Amazon Inspector Scan API" (the API's
    output formats, with a CycloneDX 1.5 example):
    https://docs.aws.amazon.com/inspector/latest/user/sbom-generator.html
  * Debian Policy Manual, 5.6.12 "Version" (how versions compare):
    https://www.debian.org/doc/debian-policy/ch-controlfields.html#version
"""

import json
import threading
import urllib.parse
import uuid
from datetime import datetime, timezone

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

ADVISORIES_PATH = "/moto-api/kiln/advisories"
MAX_COMPONENTS = 5000
FORMATS = ("CYCLONE_DX_1_5", "INSPECTOR", "INSPECTOR_ALT")
PROPERTY = "amazon:inspector:sbom_scanner:"
SEVERITIES = ("critical", "high", "medium", "low")

_advisories = []
_lock = threading.Lock()


def _order(c):
    # dpkg's character order: '~' before anything, letters before others.
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a, b):
    while a or b:
        na, nb = _non_digits(a), _non_digits(b)
        for i in range(max(len(na), len(nb))):
            x = _order(na[i]) if i < len(na) else 0
            y = _order(nb[i]) if i < len(nb) else 0
            if x != y:
                return -1 if x < y else 1
        a, b = a[len(na):], b[len(nb):]
        ia, ib = _digits(a), _digits(b)
        if int(ia or 0) != int(ib or 0):
            return -1 if int(ia or 0) < int(ib or 0) else 1
        a, b = a[len(ia):], b[len(ib):]
    return 0


def _non_digits(text):
    end = 0
    while end < len(text) and not text[end].isdigit():
        end += 1
    return text[:end]


def _digits(text):
    end = 0
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[:end]


def _split(version):
    epoch, _, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return int(epoch or 0), upstream, revision


def compare(a, b):
    """-1, 0 or 1 as dpkg orders Debian versions `a` and `b`."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def register(advisory):
    """Later scans find `advisory` (see the module's docstring)."""
    for field in ("id", "package"):
        if not isinstance(advisory.get(field), str) or not advisory[field]:
            raise ValueError(f"{field} must be a non-empty string")
    if advisory.get("severity") not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    with _lock:
        _advisories.append(advisory)


def _affects(advisory, name, version):
    if advisory["package"] != name:
        return False
    if advisory.get("introduced") and compare(version, advisory["introduced"]) < 0:
        return False
    return not advisory.get("fixed") or compare(version, advisory["fixed"]) < 0


def _deb_version(component):
    """The version of a Debian component: its purl's, epoch put back."""
    purl = component.get("purl") or ""
    if not purl.startswith("pkg:deb/") or "@" not in purl:
        return None
    version, _, qualifiers = purl.split("@", 1)[1].partition("?")
    epoch = next((q[6:] for q in qualifiers.split("&") if q.startswith("epoch=")), None)
    version = urllib.parse.unquote(version)
    return f"{epoch}:{version}" if epoch else version


def report(sbom):
    """ScanSbom's CycloneDX 1.5 answer for `sbom`."""
    with _lock:
        advisories = list(_advisories)
    components, vulnerabilities = [], []
    for component in sbom.get("components") or []:
        version = _deb_version(component)
        if version is None:
            continue
        ref = f"comp-{len(components) + 1}"
        components.append({"bom-ref": ref, "type": component.get("type", "library"),
                           "name": component.get("name"), "purl": component.get("purl")})
        for advisory in advisories:
            if not _affects(advisory, component.get("name"), version):
                continue
            properties = [{"name": PROPERTY + "exploit_available",
                           "value": "true" if advisory.get("exploit_available") else "false"}]
            if advisory.get("fixed"):
                properties.append({"name": f"{PROPERTY}fixed_version:{ref}", "value": advisory["fixed"]})
            vulnerabilities.append({
                "bom-ref": f"vuln-{len(vulnerabilities) + 1}",
                "id": advisory["id"],
                "source": {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{advisory['id']}"},
                "ratings": [{"source": {"name": "NVD"}, "score": advisory.get("cvss"),
                             "severity": advisory["severity"], "method": "CVSSv31"}],
                "affects": [{"ref": ref}],
                "properties": properties,
            })
    counts = [{"name": f"{PROPERTY}{severity}_vulnerabilities",
               "value": str(sum(1 for v in vulnerabilities if v["ratings"][0]["severity"] == severity))}
              for severity in SEVERITIES]
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "metadata": {"properties": counts,
                     "tools": [{"name": "CycloneDX SBOM API", "vendor": "Amazon Inspector"}],
                     "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"},
        "components": components,
        "vulnerabilities": vulnerabilities,
    }


def _refusal(request):
    """The ValidationException message for `request`, or None."""
    sbom = request.get("sbom")
    if not isinstance(sbom, dict):
        return "sbom is required and must be a CycloneDX 1.5 JSON document"
    if sbom.get("bomFormat") != "CycloneDX" or sbom.get("specVersion") != "1.5":
        return "The SBOM must be in CycloneDX 1.5 format"
    if len(sbom.get("components") or []) > MAX_COMPONENTS:
        return f"The SBOM has more than {MAX_COMPONENTS} components"
    if request.get("outputFormat", "CYCLONE_DX_1_5") not in FORMATS:
        return f"outputFormat must be one of {', '.join(FORMATS)}"
    return None


def _answer(start_response, status, body, headers=()):
    data = json.dumps(body).encode() if body is not None else b""
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))] + list(headers))
    return [data]


def _body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _scan_app(environ, start_response):
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/scan/sbom":
        return _answer(start_response, "404 Not Found", {"message": "not ScanSbom"})
    try:
        request = json.loads(_body(environ) or b"{}")
    except ValueError:
        request = {}
    refusal = _refusal(request if isinstance(request, dict) else {})
    if refusal:
        return _answer(start_response, "400 Bad Request", {"message": refusal},
                       [("x-amzn-ErrorType", "ValidationException")])
    if request.get("outputFormat", "CYCLONE_DX_1_5") != "CYCLONE_DX_1_5":
        return _answer(start_response, "501 Not Implemented",
                       {"message": "the emulator answers ScanSbom in CYCLONE_DX_1_5 only"})
    return _answer(start_response, "200 OK", {"sbom": report(request["sbom"])})


def _advisories_app(environ, start_response):
    if environ.get("REQUEST_METHOD") != "POST":
        return _answer(start_response, "405 Method Not Allowed", None, [("Allow", "POST")])
    try:
        register(json.loads(_body(environ)))
    except (ValueError, AttributeError, TypeError) as error:
        return _answer(start_response, "400 Bad Request", {"message": str(error)})
    start_response("204 No Content", [])
    return [b""]


def apply():
    """Route inspector-scan's requests and the advisories to this module."""
    get_application = DomainDispatcherApplication.get_application

    def with_scan(self, environ):
        if environ.get("PATH_INFO") == ADVISORIES_PATH:
            return _advisories_app
        if "/inspector-scan/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
            return _scan_app
        return get_application(self, environ)

    DomainDispatcherApplication.get_application = with_scan
