#!/usr/bin/env python3
"""The load of scripts/bench-load, against a real kube-apiserver through its REST API.

Users share out N ConfigMaps in one namespace (user u owns every name i with i % users == u) and,
all at once: create theirs, update each, delete every tenth. Each user writes from one thread on
one keep-alive connection, as kubectl would. Prints one JSON object: what was written (names,
last writer, last content, deleted), when the last write finished, and the writes' latency.
`check` then compares a repository's branch with it: every live object's file, with its last
content, committed last by its last writer; every deleted object's file removed by its deleter.

    load.py run SERVER CA_FILE NAMESPACE N USER [USER ...]
    load.py check GIT_DIR BRANCH NAMESPACE RESULT_JSON      (exit 1 on the first difference)
    load.py converged GIT_DIR BRANCH NAMESPACE RESULT_JSON  (exit 0 when the file set is right)
"""

import subprocess

import http.client
import json
import ssl
import sys
import threading
import time


def files(git_dir, branch, ns):
    """{name: path} of the branch's ConfigMap files in namespace `ns`."""
    out = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r", "--name-only", branch],
                         capture_output=True, text=True).stdout.split()
    suffix = f"/configmaps/{ns}/"
    return {p.rsplit("/", 1)[1].removesuffix(".yaml"): p for p in out if suffix in p}


def converged(git_dir, branch, ns, result):
    """Whether the branch holds the live state: every file, with its last content."""
    return check(git_dir, branch, ns, result, authors=False, quiet=True)


def last_commits(git_dir, branch, ns):
    """The newest commit that touched each ConfigMap's file: its author and what it did."""
    log = subprocess.run(["git", "--git-dir", git_dir, "log", "--format=>%an", "--name-status",
                          "--no-renames", branch], capture_output=True, text=True).stdout
    last = {}
    author = None
    for line in log.splitlines():
        if line.startswith(">"):
            author = line[1:]
        elif line.strip():
            status, path = line.split("\t", 1)
            name = path.rsplit("/", 1)[1].removesuffix(".yaml")
            if f"/configmaps/{ns}/" in path and name not in last:
                last[name] = (author, status)
    return last


def tally(git_dir, branch, ns, result):
    """Who each final state's commit names: its writer, the fallback author, or someone else."""
    r = json.load(open(result))
    last = last_commits(git_dir, branch, ns)
    finals = [(name, w["user"]) for name, w in r["live"].items()]
    finals += list(r["deleted"].items())
    right = sum(1 for name, user in finals if last.get(name, (None,))[0] == user)
    fallback = sum(1 for name, user in finals if last.get(name, (None,))[0] == "gitops-reverser")
    wrong = len(finals) - right - fallback
    print(f"{len(finals)} final states: {right} named for their writer, {fallback} for the "
          f"fallback author, {wrong} for someone else")
    return wrong == 0


def check(git_dir, branch, ns, result, authors=True, quiet=False):
    r = json.load(open(result))
    have = files(git_dir, branch, ns)
    problems = []
    if set(have) != set(r["live"]):
        extra, missing = set(have) - set(r["live"]), set(r["live"]) - set(have)
        problems.append(f"files: {len(extra)} extra ({sorted(extra)[:3]}), "
                        f"{len(missing)} missing ({sorted(missing)[:3]})")
        if quiet:
            return False
    last = last_commits(git_dir, branch, ns) if authors else {}
    names = [name for name in r["live"] if name in have]
    spec = "".join(f"{branch}:{have[name]}\n" for name in names)
    raw = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "--batch"], input=spec.encode(),
                         capture_output=True).stdout
    bodies, at = {}, 0
    for name in names:
        header_end = raw.index(b"\n", at)
        size = int(raw[at:header_end].split()[2])
        bodies[name] = raw[header_end + 1:header_end + 1 + size].decode()
        at = header_end + 1 + size + 1
    for name in names:
        w, body = r["live"][name], bodies[name]
        if f'rev: "{w["rev"]}"' not in body and f"rev: '{w['rev']}'" not in body:
            problems.append(f"{name}: content is not rev {w['rev']}")
        if authors and last.get(name, (None,))[0] != w["user"]:
            problems.append(f"{name}: last written by {w['user']}, committed by {last.get(name)}")
    for name, user in r["deleted"].items():
        if authors and last.get(name) != (user, "D"):
            problems.append(f"{name}: deleted by {user}, last commit {last.get(name)}")
    if not quiet:
        for p in problems[:20]:
            print(p, file=sys.stderr)
    return not problems


def main():
    if sys.argv[1] in ("check", "converged", "tally"):
        fn = {"check": check, "converged": converged, "tally": tally}[sys.argv[1]]
        sys.exit(0 if fn(*sys.argv[2:6]) else 1)
    server, ca, ns, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    users = sys.argv[6:]
    host, port = server.removeprefix("https://").split(":")
    ctx = ssl.create_default_context(cafile=ca)
    results = {}
    errors = []

    def run(u, user):
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
        headers = {"Authorization": f"Bearer {user}", "Content-Type": "application/json"}
        base = f"/api/v1/namespaces/{ns}/configmaps"
        latencies, final, deleted = [], {}, []
        mine = [i for i in range(n) if i % len(users) == u]

        def call(method, path, body=None, expect=(200, 201)):
            t0 = time.monotonic()
            conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
            r = conn.getresponse()
            data = r.read()
            latencies.append(time.monotonic() - t0)
            if r.status not in expect:
                errors.append(f"{user} {method} {path}: {r.status} {data[:200]!r}")
            return data

        for i in mine:
            name = f"load-{i:05d}"
            call("POST", base, {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": name, "labels": {"owner": user}},
                                "data": {"n": str(i), "rev": "1", "pad": "x" * 200}})
            final[name] = "1"
        for i in mine:
            name = f"load-{i:05d}"
            patch = json.dumps({"data": {"rev": "2"}})
            t0 = time.monotonic()
            conn.request("PATCH", f"{base}/{name}", body=patch,
                         headers={**headers, "Content-Type": "application/merge-patch+json"})
            r = conn.getresponse()
            body = r.read()
            latencies.append(time.monotonic() - t0)
            if r.status != 200:
                errors.append(f"{user} PATCH {name}: {r.status} {body[:200]!r}")
            final[name] = "2"
        for i in mine:
            if i % 10 == 0:
                name = f"load-{i:05d}"
                call("DELETE", f"{base}/{name}")
                final.pop(name)
                deleted.append(name)
        results[user] = {"latencies": latencies, "final": final, "deleted": deleted,
                         "done": time.time()}

    threads = [threading.Thread(target=run, args=(u, user)) for u, user in enumerate(users)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(x for r in results.values() for x in r["latencies"])
    out = {
        "started": t0,
        "last_write": max(r["done"] for r in results.values()),
        "writes": len(lat),
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
        "p99_ms": 1000 * lat[min(len(lat) - 1, len(lat) * 99 // 100)] if lat else None,
        "live": {name: {"user": user, "rev": rev}
                 for user, r in results.items() for name, rev in r["final"].items()},
        "deleted": {name: user for user, r in results.items() for name in r["deleted"]},
        "errors": errors,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
