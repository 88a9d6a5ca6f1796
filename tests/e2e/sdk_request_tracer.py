"""Drives edgetrace's Request Trace API with Cloudflare's official Python SDK, unchanged:
configures a zone (proxied record, an account custom ruleset executed from the account's entry
point, a block rule, a rewrite) with the SDK, traces requests with
`client.request_tracers.traces.create`, and compares with what the edge proxy itself answers
for the same requests. Exits non-zero with a message on the first difference; prints a JSON
summary on success.

Usage: sdk_request_tracer.py BASE_URL TOKEN ACCOUNT_ID PROXY_HOST:PORT ORIGIN_HOST:PORT
"""
import http.client
import json
import sys

import cloudflare
from cloudflare import Cloudflare

base_url, token, account, proxy, origin = sys.argv[1:]
client = Cloudflare(api_token=token, base_url=base_url, max_retries=0)
HOST = "www.tracer.test"


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")


def d(x):
    """A response as a dict. The SDK types ruleset responses as Union[Ruleset, object], and the
    trace's steps as a recursive type alias (`Trace = TypeAliasType("Trace", List["TraceItem"])`)
    that its response parsing leaves as plain dicts: against Cloudflare's API too."""
    return x.to_dict() if hasattr(x, "to_dict") else x


def bad_request(call):
    """The 400 a call must raise: its errors' pointers and first message."""
    try:
        call()
    except cloudflare.BadRequestError as e:
        errors = e.body if isinstance(e.body, list) else e.body["errors"]
        return [err.get("source", {}).get("pointer") for err in errors], errors[0]["message"]
    sys.exit("FAILED: expected a 400")


def through_proxy(method, path, headers=None):
    """The edge proxy's answer to a real request: status, headers, body."""
    host, port = proxy.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, headers={"Host": HOST, **(headers or {})})
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return out


def rule_id(ruleset, ref):
    return [r for r in ruleset["rules"] if r.get("ref") == ref][0]["id"]


out = {}

# The configuration, all of it through the SDK.
zone = client.zones.create(account={"id": account}, name="tracer.test", type="full")
client.dns.records.create(zone_id=zone.id, type="A", name="www", content=origin.rsplit(":", 1)[0], proxied=True, ttl=1)
phase = "http_request_firewall_custom"
custom = d(client.rulesets.create(
    account_id=account,
    kind="custom",
    name="sdk shared",
    description="shared by every zone",
    phase=phase,
    rules=[
        {"ref": "posts", "action": "log", "expression": 'http.request.method eq "POST"', "description": "log posts"},
        {"ref": "off", "action": "block", "expression": "true", "enabled": False, "description": "never"},
        {"ref": "blocked", "action": "block", "expression": 'starts_with(http.request.uri.path, "/blocked")',
         "description": "blocked area"},
        {"ref": "evil", "action": "block", "expression": 'http.cookie contains "session=evil"'},
        {"ref": "london-bots", "action": "block",
         "expression": 'ip.src.city eq "London" and cf.bot_management.score lt 10'},
    ],
))
root = d(client.rulesets.phases.update(
    phase,
    account_id=account,
    rules=[{"ref": "run", "action": "execute", "expression": f'http.host eq "{HOST}"',
            "description": "run the shared ruleset", "action_parameters": {"id": custom["id"]}}],
))
transform = d(client.rulesets.phases.update(
    "http_request_transform",
    zone_id=zone.id,
    rules=[{"ref": "greet", "action": "rewrite", "expression": 'http.request.uri.path eq "/greeting"',
            "action_parameters": {"uri": {"path": {"value": "/hello.txt"}}}}],
))
client.rulesets.phases.update(
    "http_request_late_transform",
    zone_id=zone.id,
    rules=[{"ref": "mark", "action": "rewrite", "expression": "true",
            "action_parameters": {"headers": {"x-traced-by": {"operation": "set", "value": "edgetrace"}}}}],
)
zone_block = d(client.rulesets.phases.update(
    phase,
    zone_id=zone.id,
    rules=[{"ref": "legal", "action": "block", "expression": 'http.request.uri.path eq "/legal"',
            "action_parameters": {"response": {"status_code": 451, "content": "unavailable", "content_type": "text/plain"}}}],
))

# 1. A blocked POST, skip_response: the nested trace, as the SDK parses it.
result = client.request_tracers.traces.create(
    account_id=account,
    method="POST",
    url=f"https://{HOST}/blocked/area?x=1",
    headers={"user-agent": "cloudflare-python", "x-request": "1"},
    cookies={"session": "fine", "theme": "dark"},
    body={"json": {"order": 42}},
    context={"geoloc": {"city": "Paris", "iso_code": "FR", "latitude": 48.85, "longitude": 2.35},
             "bot_score": 30, "threat_score": 1, "skip_challenge": True},
    protocol="HTTP/1.1",
    skip_response=True,
)
check(result is not None and result.status_code == 403, f"blocked status {result}")
check(len(result.trace) == 1, f"one ruleset step: {result.trace}")
step = d(result.trace[0])
check((step["type"], step["kind"], step["step_name"], step["matched"]) == ("ruleset", "root", root["id"], True),
      f"root {step}")
check(step["phase"] == phase, f"root phase {step}")
execute = step["trace"][0]
check((execute["type"], execute["action"], execute["matched"]) == ("rule", "execute", True), f"execute {execute}")
check(execute["step_name"] == rule_id(root, "run") and execute["description"] == "run the shared ruleset",
      f"execute {execute}")
check(execute["action_parameters"]["id"] == custom["id"], f"execute parameters {execute}")
check(execute["expression"] == f'http.host eq "{HOST}"', f"execute expression {execute}")
nested = execute["trace"][0]
check((nested["type"], nested["kind"], nested["name"], nested["step_name"]) ==
      ("ruleset", "custom", "sdk shared", custom["id"]), f"nested {nested}")
check(nested["description"] == "shared by every zone", f"nested description {nested}")
rules = [(r["step_name"], r["action"], r["matched"]) for r in nested["trace"]]
check(rules == [(rule_id(custom, "posts"), "log", True), (rule_id(custom, "blocked"), "block", True)],
      f"nested rules {rules}")
check(all(r["explanation"] for r in nested["trace"]), "rules are explained")
raw = result.to_dict()
check(raw["outcome"]["answered_by"] == "block", f"outcome {raw['outcome']}")
check("origin_request" not in raw["outcome"], f"nothing went to the origin {raw['outcome']}")
out["blocked_status"] = result.status_code
out["nested_rules"] = [r["action"] for r in nested["trace"]]

# The same request to the proxy: the same answer.
status, _, _ = through_proxy("POST", "/blocked/area?x=1")
out["proxy_blocked_status"] = status

# 2. ?all_rules=true (extension): rules that did not match are listed, the disabled one never.
result = client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/other", skip_response=True,
    extra_query={"all_rules": "true"},
)
listed = []


def walk(steps):
    for s in steps or []:
        s = d(s)
        listed.append(s["step_name"])
        walk(s.get("trace"))


walk(result.trace)
check(rule_id(custom, "blocked") in listed and rule_id(custom, "evil") in listed, f"all rules {listed}")
check(rule_id(custom, "off") not in listed, f"the disabled rule appeared: {listed}")
check(rule_id(zone_block, "legal") in listed, f"the zone's rule {listed}")
check(result.status_code is None, f"no answer with skip_response: {result.status_code}")
out["all_rules_steps"] = len(listed)

# 3. Context and cookies reach the rules.
result = client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/", cookies={"session": "evil"}, skip_response=True,
)
check(result.status_code == 403, f"cookie rule {result}")
result = client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/",
    context={"geoloc": {"city": "London"}, "bot_score": 5}, skip_response=True,
)
check(result.status_code == 403, f"geoloc and bot score {result}")
result = client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/legal", skip_response=True,
)
check(result.status_code == 451, f"zone block {result}")
out["zone_block_status"] = result.status_code

# 4. Without skip_response: the real origin answers, after the rewrite.
result = client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/greeting", headers={"accept": "text/plain"},
    protocol="HTTP/1.1",
)
raw = result.to_dict()
check(result.status_code == 200, f"origin status {raw}")
outcome = raw["outcome"]
check(outcome["origin_request"]["url"] == f"http://{HOST}/hello.txt", f"rewritten {outcome}")
check(outcome["origin_request"]["address"] == origin, f"origin address {outcome}")
check(outcome["origin_request"]["headers"]["x-traced-by"] == "edgetrace", f"late header {outcome}")
check("SimpleHTTP" in outcome["response_headers"].get("server", ""), f"the origin's headers {outcome}")
check([s["phase"] for s in raw["trace"]] == ["http_request_transform", phase, "http_request_late_transform"],
      f"phases {raw['trace']}")
check(raw["trace"][0]["step_name"] == transform["id"], "the transform ruleset")
out["origin_status"] = result.status_code
# The origin's own status comes back: a file it does not have.
result = client.request_tracers.traces.create(account_id=account, method="GET", url=f"https://{HOST}/missing.txt")
out["missing_status"] = result.status_code
# The proxy, for the same requests.
status, headers, body = through_proxy("GET", "/greeting")
check(body == b"hello from the origin\n", f"proxied body {body!r}")
out["proxy_origin_status"] = status
out["proxy_missing_status"] = through_proxy("GET", "/missing.txt")[0]

# 5. A change through the SDK is seen by the next trace: the block rule disabled.
client.rulesets.rules.edit(
    rule_id(custom, "blocked"), ruleset_id=custom["id"], account_id=account,
    action="block", expression='starts_with(http.request.uri.path, "/blocked")', enabled=False,
)
result = client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/blocked/area", skip_response=True,
)
check(result.status_code is None, f"still blocked after the change: {result}")
out["after_change_status"] = result.status_code

# 6. Bad input: 400s that name the field.
pointers, message = bad_request(lambda: client.request_tracers.traces.create(
    account_id=account, method="GET", url="https://www.elsewhere.test/", skip_response=True))
check(pointers == ["/url"] and "www.elsewhere.test" in message, f"{pointers} {message}")
pointers, _ = bad_request(lambda: client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/", context={"bot_score": 0, "threat_score": 101},
    headers={"x-bad": "a\nb"}, protocol="HTTP/9"))
check(pointers == ["/protocol", "/headers/x-bad", "/context/bot_score", "/context/threat_score"], f"{pointers}")
pointers, _ = bad_request(lambda: client.request_tracers.traces.create(
    account_id=account, method="GET", url=f"https://{HOST}/", body={"base64": "not base64!"}))
check(pointers == ["/body/base64"], f"{pointers}")
out["bad_requests"] = 3

out["ok"] = True
print(json.dumps(out, sort_keys=True))
