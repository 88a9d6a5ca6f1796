"""Drives edgetrace's zones, DNS records and Rulesets API with Cloudflare's official Python
SDK, unchanged, and checks what comes back. Exits non-zero with a message on the first
difference; prints a JSON summary on success.

Usage: sdk_edge.py BASE_URL TOKEN ACCOUNT_ID
"""
import json
import sys

import cloudflare
from cloudflare import Cloudflare

base_url, token, account = sys.argv[1:]
client = Cloudflare(api_token=token, base_url=base_url, max_retries=0)


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")


def bad_request(call):
    """The 400 a call must raise: its first error's pointer and message."""
    try:
        call()
    except cloudflare.BadRequestError as e:
        error = e.body[0] if isinstance(e.body, list) else e.body["errors"][0]
        return error.get("source", {}).get("pointer"), error["message"]
    sys.exit("FAILED: expected a 400")


def d(x):
    """A response as a dict. The SDK types ruleset responses as Union[Ruleset, object], and
    pydantic's smart union picks `object` for a JSON object: against Cloudflare's API too, they
    come back as dicts."""
    return x.to_dict() if hasattr(x, "to_dict") else x


out = {}

# Zones and proxied DNS records.
zone = client.zones.create(account={"id": account}, name="sdk.test", type="full")
check(zone.name == "sdk.test" and zone.status == "active", f"zone {zone}")
check(zone.account.id == account, "zone account")
zones = list(client.zones.list(name="sdk.test", account={"id": account}))
check([z.id for z in zones] == [zone.id], f"zones.list {zones}")
check(client.zones.get(zone_id=zone.id).name == "sdk.test", "zones.get")

www = client.dns.records.create(
    zone_id=zone.id, type="A", name="www.sdk.test", content="127.0.0.1", proxied=True, ttl=1
)
check(www.proxied is True and www.content == "127.0.0.1", f"record {www}")
api = client.dns.records.create(zone_id=zone.id, type="CNAME", name="api", content="www.sdk.test", ttl=300)
check(api.name == "api.sdk.test" and api.proxied is False, f"relative name {api}")
names = sorted(r.name for r in client.dns.records.list(zone_id=zone.id))
check(names == ["api.sdk.test", "www.sdk.test"], f"records {names}")
edited = client.dns.records.edit(dns_record_id=api.id, zone_id=zone.id, type="CNAME", name="api", ttl=300, proxied=True)
check(edited.proxied is True and edited.content == "www.sdk.test", f"edited {edited}")
pointer, message = bad_request(lambda: client.dns.records.create(
    zone_id=zone.id, type="A", name="bad", content="not-an-ip", ttl=1
))
check(pointer == "/content" and "not an IPv4 address" in message, f"bad record: {pointer} {message}")
client.dns.records.delete(dns_record_id=api.id, zone_id=zone.id)

# A zone entry point made with phases.update, then rules added, edited and deleted.
phase = "http_request_firewall_custom"
entry = d(client.rulesets.phases.update(
    phase,
    zone_id=zone.id,
    rules=[
        {"action": "block", "expression": 'http.request.uri.path eq "/admin"', "description": "admin", "ref": "admin"},
        {"action": "managed_challenge", "expression": "ip.src in {192.0.2.0/24}"},
    ],
))
check(entry["kind"] == "zone" and entry["version"] == "1" and len(entry["rules"]) == 2, f"entry point {entry}")
admin_rule = entry["rules"][0]
check(admin_rule["action"] == "block" and admin_rule["ref"] == "admin" and admin_rule["version"] == "1", f"rule {admin_rule}")
got = d(client.rulesets.phases.get(phase, zone_id=zone.id))
check(got["id"] == entry["id"], "phases.get")

added = d(client.rulesets.rules.create(
    entry["id"],
    zone_id=zone.id,
    action="log",
    expression='http.host eq "sdk.test"',
    position={"before": admin_rule["id"]},
))
check(added["version"] == "2" and [r["action"] for r in added["rules"]] == ["log", "block", "managed_challenge"], f"rules.create {added}")
edited = d(client.rulesets.rules.edit(
    admin_rule["id"],
    ruleset_id=entry["id"],
    zone_id=zone.id,
    action="block",
    expression='http.request.uri.path eq "/admin"',
    enabled=False,
    action_parameters={"response": {"status_code": 451, "content": "gone", "content_type": "text/plain"}},
))
rule = [r for r in edited["rules"] if r["id"] == admin_rule["id"]][0]
check(edited["version"] == "3" and rule["enabled"] is False and rule["version"] == "2", f"rules.edit {edited}")
check(rule["action_parameters"]["response"]["status_code"] == 451, "block response kept")
deleted = d(client.rulesets.rules.delete(admin_rule["id"], ruleset_id=entry["id"], zone_id=zone.id))
check(deleted["version"] == "4" and len(deleted["rules"]) == 2, f"rules.delete {deleted}")

versions = [d(v)["version"] for v in client.rulesets.versions.list(entry["id"], zone_id=zone.id)]
check(versions == ["4", "3", "2", "1"], f"versions {versions}")
v1 = d(client.rulesets.versions.get("1", ruleset_id=entry["id"], zone_id=zone.id))
check(len(v1["rules"]) == 2 and v1["rules"][0]["ref"] == "admin", f"version 1 {v1}")
phase_versions = [d(v)["version"] for v in client.rulesets.phases.versions.list(phase, zone_id=zone.id)]
check(phase_versions == versions, f"phase versions {phase_versions}")
client.rulesets.versions.delete("1", ruleset_id=entry["id"], zone_id=zone.id)

# A bad expression is a 400 that points at the rule and shows where.
pointer, message = bad_request(lambda: client.rulesets.update(
    entry["id"],
    zone_id=zone.id,
    rules=[
        {"action": "log", "expression": "true"},
        {"action": "log", "expression": "true"},
        {"action": "block", "expression": 'http.hots eq "x"'},
    ],
))
check(pointer == "/rules/2/expression", f"pointer {pointer}")
check('did you mean "http.host"?' in message and "^^^" in message, f"message {message}")
pointer, message = bad_request(lambda: client.rulesets.phases.update(
    "http_request_dynamic_redirect",
    zone_id=zone.id,
    rules=[{"action": "block", "expression": "true"}],
))
check(pointer == "/rules/0/action" and "not allowed in phase http_request_dynamic_redirect" in message, message)
# A dry run stores nothing.
client.rulesets.phases.update(
    "http_request_dynamic_redirect",
    zone_id=zone.id,
    dry_run=True,
    rules=[{"action": "redirect", "expression": "true", "action_parameters": {
        "from_value": {"target_url": {"value": "https://sdk.test/"}, "status_code": 301}}}],
)
try:
    client.rulesets.phases.get("http_request_dynamic_redirect", zone_id=zone.id)
    sys.exit("FAILED: the dry run stored an entry point")
except cloudflare.NotFoundError:
    pass

# Account level: a custom ruleset executed from the root entry point.
custom = d(client.rulesets.create(
    account_id=account,
    kind="custom",
    name="shared",
    phase=phase,
    rules=[{"action": "block", "expression": 'http.user_agent contains "bot"'}],
))
root = d(client.rulesets.phases.update(
    phase,
    account_id=account,
    rules=[{"action": "execute", "expression": "true", "action_parameters": {"id": custom["id"]}}],
))
check(root["kind"] == "root" and root["rules"][0]["action_parameters"]["id"] == custom["id"], f"root {root}")
listed = sorted(d(r)["kind"] for r in client.rulesets.list(account_id=account))
check(listed == ["custom", "root"], f"list {listed}")
try:
    client.rulesets.delete(custom["id"], account_id=account)
    sys.exit("FAILED: deleted a ruleset in use")
except cloudflare.ConflictError:
    pass
client.rulesets.phases.update(phase, account_id=account, rules=[])
client.rulesets.delete(custom["id"], account_id=account)
client.zones.delete(zone_id=zone.id)
try:
    client.zones.get(zone_id=zone.id)
    sys.exit("FAILED: the zone survived its deletion")
except cloudflare.NotFoundError:
    pass
out["ok"] = True
print(json.dumps(out))
