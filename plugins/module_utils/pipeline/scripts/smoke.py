# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CD smoke request, run by the smoke step in the Python image (Argo `script` template)
with no credentials: POST $SMOKE_BODY as JSON to $URL (the serving Service) and require a JSON
object holding $EXPECT_KEY. A refused or dropped connection, a timeout, HTTP 408, 429 or 5xx is
retried $RETRIES times, $RETRY_DELAY seconds apart; each attempt may take $MAX_TIME
seconds (curl's --retry --retry-connrefused, which the step ran before). Every input comes from the environment; nothing is spliced into code."""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def fail(message):
    sys.stderr.write(message + "\n")
    raise SystemExit(1)


def post(url, body, max_time):
    """(status, text) of one POST; raises OSError for transport errors."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        # build_opener(): the default handlers, as the module-level shortcut uses.
        with urllib.request.build_opener().open(request, timeout=max_time) as answer:
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def main(env):
    url, body, key = env["URL"], env["SMOKE_BODY"].encode("utf-8"), env["EXPECT_KEY"]
    retries, delay, max_time = int(env["RETRIES"]), float(env["RETRY_DELAY"]), float(env["MAX_TIME"])
    for attempt in range(retries + 1):
        try:
            status, text = post(url, body, max_time)
        except OSError as err:
            status, text = None, str(getattr(err, "reason", err))
        if status is not None and status < 500 and status not in (408, 429):
            break
        if attempt < retries:
            sys.stderr.write(f"smoke request POST {url}: {status or text}; retrying in {delay:g}s\n")
            time.sleep(delay)
    if status is None or status >= 400:
        reason = f"HTTP {status}: " if status else ""
        fail(f"smoke request POST {url} failed: {reason}{text[:500]}")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or key not in answer:
        fail(f"smoke request POST {url} answered without '{key}': {text[:500]}")
    sys.stdout.write(f"smoke request POST {url} ok for model version {env['MODEL_VERSION']}: {text[:500]}\n")


if __name__ == "__main__":
    main(os.environ)
