"""Drives edgetrace's page rules and lists with Cloudflare's official Python SDK, unchanged,
and checks what comes back. Exits non-zero with a message on the first difference; prints a
JSON summary on success.

Usage: sdk_page_rules_lists.py BASE_URL TOKEN ACCOUNT_ID
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


def target(pattern):
    return [{"target": "url", "constraint": {"operator": "matches", "value": pattern}}]


out = {}
zone = client.zones.create(account={"id": account}, name="pages.test", type="full")
check(zone.name == "pages.test", f"zone {zone}")

# Page rules.
images = client.page_rules.create(
    zone_id=zone.id,
    targets=target("*pages.test/images/*"),
    actions=[{"id": "cache_level", "value": "bypass"}, {"id": "browser_cache_ttl", "value": 14400}],
    priority=1,
    status="active",
)
check(images.status == "active" and images.priority == 1, f"created {images}")
check(images.targets[0].constraint.value == "*pages.test/images/*", f"targets {images.targets}")
check(
    [(a.id, a.value) for a in images.actions] == [("cache_level", "bypass"), ("browser_cache_ttl", 14400)],
    f"actions {images.actions}",
)
check(images.created_on is not None and images.created_on == images.modified_on, "times")

old = client.page_rules.create(
    zone_id=zone.id,
    targets=target("http://www.pages.test/old/*"),
    actions=[{"id": "forwarding_url", "value": {"url": "https://www.pages.test/new/$1", "status_code": 301}}],
)
# Cloudflare's defaults: priority 1, disabled.
check(old.priority == 1 and old.status == "disabled", f"defaults {old}")
check(old.actions[0].value.url == "https://www.pages.test/new/$1", f"forwarding {old.actions}")
check(old.actions[0].value.status_code == 301, "status code")

edited = client.page_rules.edit(old.id, zone_id=zone.id, priority=5, status="active")
check(edited.priority == 5 and edited.status == "active", f"edited {edited}")
check(edited.actions[0].value.url == "https://www.pages.test/new/$1", "edit keeps actions")

listed = client.page_rules.list(zone_id=zone.id)
check([r.id for r in listed] == [old.id, images.id], f"list order {[(r.id, r.priority) for r in listed]}")
asc = client.page_rules.list(zone_id=zone.id, direction="asc")
check([r.id for r in asc] == [images.id, old.id], "asc")
active = client.page_rules.list(zone_id=zone.id, status="disabled")
check(active == [], f"disabled {active}")

got = client.page_rules.get(images.id, zone_id=zone.id)
check(got.id == images.id and got.actions == images.actions, f"get {got}")

updated = client.page_rules.update(
    images.id,
    zone_id=zone.id,
    targets=target("pages.test/*"),
    actions=[{"id": "always_use_https"}],
    priority=2,
    status="active",
)
check([a.id for a in updated.actions] == ["always_use_https"], f"update {updated.actions}")
check(updated.targets[0].constraint.value == "pages.test/*", "update target")

pointer, message = bad_request(
    lambda: client.page_rules.create(
        zone_id=zone.id,
        targets=target("pages.test/*"),
        actions=[{"id": "cache_level", "value": "everything"}],
    )
)
check(pointer == "/actions/0/value", f"pointer {pointer}")
check("bypass, basic, simplified, aggressive, cache_everything" in message, message)
pointer, message = bad_request(
    lambda: client.page_rules.create(
        zone_id=zone.id,
        targets=target("other.test/*"),
        actions=[{"id": "ssl", "value": "full"}],
    )
)
check(pointer == "/targets/0/constraint/value" and "not in zone pages.test" in message, message)
pointer, message = bad_request(
    lambda: client.page_rules.edit(
        old.id,
        zone_id=zone.id,
        actions=[{"id": "forwarding_url", "value": {"url": "https://x.test/$3", "status_code": 301}}],
    )
)
check(pointer == "/actions/0/value/url" and "$3 refers to no wildcard" in message, message)

deleted = client.page_rules.delete(images.id, zone_id=zone.id)
check(deleted.id == images.id, f"delete {deleted}")
check([r.id for r in client.page_rules.list(zone_id=zone.id)] == [old.id], "after delete")
try:
    client.page_rules.get(images.id, zone_id=zone.id)
    sys.exit("FAILED: a deleted page rule is found")
except cloudflare.NotFoundError:
    pass
out["page_rules"] = 2

# Lists.
office = client.rules.lists.create(account_id=account, kind="ip", name="office", description="HQ")
check(office.kind == "ip" and office.name == "office" and office.num_items == 0, f"list {office}")
op = client.rules.lists.items.create(
    office.id,
    account_id=account,
    body=[{"ip": "192.0.2.0/24", "comment": "lab"}, {"ip": "10.0.0.1"}, {"ip": "2001:db8::/32"}],
)
status = client.rules.lists.bulk_operations.get(op.operation_id, account_id=account)
check(status.id == op.operation_id and status.status == "completed" and status.completed, f"operation {status}")
items = list(client.rules.lists.items.list(office.id, account_id=account))
check(sorted(i.ip for i in items) == ["10.0.0.1", "192.0.2.0/24", "2001:db8::/32"], f"items {items}")
lab = [i for i in items if i.ip == "192.0.2.0/24"][0]
check(lab.comment == "lab", f"comment {lab}")
# The SDK follows result_info.cursors.after from page to page.
paged = list(client.rules.lists.items.list(office.id, account_id=account, per_page=1))
check([i.id for i in paged] == [i.id for i in items], f"paged {paged}")
one = client.rules.lists.items.get(lab.id, account_id=account, list_id=office.id)
check(one.ip == "192.0.2.0/24" and one.id == lab.id, f"item {one}")
check(client.rules.lists.get(office.id, account_id=account).num_items == 3, "num_items")

pointer, message = bad_request(
    lambda: client.rules.lists.items.create(office.id, account_id=account, body=[{"ip": "10.0.0.0/4"}])
)
check(pointer == "/0/ip" and "/8 to /32" in message, f"{pointer} {message}")
pointer, message = bad_request(
    lambda: client.rules.lists.create(account_id=account, kind="redirect", name="redirects")
)
check(pointer == "/kind" and "not supported" in message, message)

hosts = client.rules.lists.create(account_id=account, kind="hostname", name="hosts")
client.rules.lists.items.create(
    hosts.id, account_id=account, body=[{"hostname": {"url_hostname": "*.example.com"}}]
)
host_items = list(client.rules.lists.items.list(hosts.id, account_id=account))
check(host_items[0].hostname.url_hostname == "*.example.com", f"hostname {host_items}")
asns = client.rules.lists.create(account_id=account, kind="asn", name="asns")
client.rules.lists.items.create(asns.id, account_id=account, body=[{"asn": 13335}])
check([i.asn for i in client.rules.lists.items.list(asns.id, account_id=account)] == [13335], "asn")

names = [l.name for l in client.rules.lists.list(account_id=account)]
check(names == ["asns", "hosts", "office"], f"lists {names}")
client.rules.lists.items.delete(office.id, account_id=account, items=[{"id": lab.id}])
check(client.rules.lists.get(office.id, account_id=account).num_items == 2, "after item delete")
check(client.rules.lists.delete(office.id, account_id=account).id == office.id, "list delete")
out["lists"] = len(names)
out["ok"] = True
print(json.dumps(out))
