"""Drives edgetrace's API with Cloudflare's official Python SDK, unchanged.

Usage: sdk_traceroute.py BASE_URL TOKEN ACCOUNT_ID TARGET...
Prints one JSON object on stdout: the SDK's parsed results per packet type, the token
verification, and the errors the SDK raised for bad input.
"""
import json
import sys

import cloudflare
from cloudflare import Cloudflare

base_url, token, account, *targets = sys.argv[1:]
client = Cloudflare(api_token=token, base_url=base_url, max_retries=0)
out = {"traces": {}}
for packet_type in ["icmp", "udp", "tcp"]:
    page = client.diagnostics.traceroutes.create(
        account_id=account,
        targets=targets,
        colos=["lab01"],
        options={"max_ttl": 10, "packet_type": packet_type, "packets_per_ttl": 2, "wait_time": 1},
    )
    out["traces"][packet_type] = [t.to_dict() for t in page.result]
out["verify"] = client.user.tokens.verify().to_dict()
try:
    client.diagnostics.traceroutes.create(
        account_id=account, targets=targets, options={"max_ttl": 65}
    )
    out["bad_request"] = None
except cloudflare.BadRequestError as e:
    out["bad_request"] = {"status": e.status_code, "body": e.body}
try:
    Cloudflare(api_token="not-a-token", base_url=base_url, max_retries=0).diagnostics.traceroutes.create(
        account_id=account, targets=targets
    )
    out["unauthenticated"] = None
except cloudflare.AuthenticationError as e:
    out["unauthenticated"] = {"status": e.status_code, "body": e.body}
print(json.dumps(out))
