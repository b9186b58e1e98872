#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Load on the guest channels: the real vmfedd on a private bus, and
load-client processes playing the agents of many VMs on their channel
sockets (tests/load/load-client.c).  Every routed call is checked: each
caller gets the target's name back, each target's agent receives each URL
exactly once, the broker audits each one.  No timing is asserted; `bench`
prints the figures as one JSON line.

  routed    64 VMs x CALLS routed Guest.OpenURL calls (8 in flight each) to
            the agents of 4 target VMs, in 2 processes of 32 VMs: zero
            failures.
  inflight  one VM with 2000 requests in flight at once (the target's agent
            answers none before it holds all 2000), then one VM sending
            3 x 4096 at once to an agent that answers in batches of 4096:
            the broker stops reading it at 4096 in flight and none fails;
            then two VMs with 2000 in flight to each other's agent.
  flood     8 well-behaved VMs keep calling while one VM floods (200000
            calls written as fast as its socket takes them, no limit on how
            many are in flight, replies read) and a peer on a third
            channel floods without ever reading its replies: the victims see
            zero failures, the flooder is throttled (all its calls succeed),
            the non-reader is cut off.
  bench     the figures: 64-client throughput and p50/p99, max in flight
            from one VM, victims' p50/p99 without and with a flooder, broker
            peak RSS.

CALLS is 10000, or VMFED_LOAD_CALLS (the same in sanitizer builds: about 70 s there).

Usage: test_load.py VMFEDD LOAD_CLIENT routed|inflight|flood|bench
"""
import json
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.environ.get("VMFED_SOURCE_ROOT", os.path.dirname(__file__) + "/../.."),
                                "tests", "broker"))
sys.path.insert(0, os.path.join(os.environ.get("VMFED_SOURCE_ROOT", os.path.dirname(__file__) + "/../.."),
                                "tests", "services"))
from harness import Harness, _die_with_parent  # noqa: E402
from rawbus import RawPeer  # noqa: E402

GUESTS = [f"g{i:02d}" for i in range(64)]
TARGETS = ["t0", "t1", "t2", "t3"]
CALLS = int(os.environ.get("VMFED_LOAD_CALLS", "10000"))
IN_FLIGHT = 2000          # the brief: at least 1000 from one VM
THROTTLE = 4096           # GUEST_SERVICES_MAX_IN_FLIGHT (broker/guest-services.h)
FLOOD_CALLS = 200000
VICTIMS = GUESTS[:8]
VICTIM_CALLS = max(CALLS // 5, 200)


def vm():
    return "[VM]\nRole=app\nKernel=@KERNEL@\n"


VMS = {n: vm() for n in GUESTS + TARGETS + ["flooder", "noreader"]}
POLICY = {"30-load.policy": "vmfed.OpenURL  *  @anyvm  @anyvm  allow\n"}
ROOT = "/org/vmfed/Federation1"
GUEST = "org.vmfed.Federation1.Guest"


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class LoadHarness(Harness):
    sanitizer_report = ""

    def stop(self):
        """Stop the broker first and keep what a sanitizer said at its exit (the log goes with the temp dir)."""
        self.stop_daemon()
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [line for line in f if not line.startswith("<")]
            text = "".join(lines)
            if any(m in text for m in SANITIZER_MARKS):
                self.sanitizer_report = text[-20000:]
        except (OSError, AttributeError):
            pass
        super().stop()

    def dump_log(self):
        """Only the end and the warnings: the audit log of a load run is hundreds of MB."""
        try:
            tail, warnings = [], []
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    if line.startswith(("<3>", "<4>")) and len(warnings) < 50:
                        warnings.append(line)
                    tail = (tail + [line])[-60:]
            sys.stderr.write("---- vmfedd log (warnings, then the last lines) ----\n" + "".join(warnings) +
                             "....\n" + "".join(tail) + "--------------------\n")
        except (OSError, AttributeError):
            pass

    def peak_rss_kib(self):
        with open(f"/proc/{self.daemon.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def audited(self, service="vmfed.OpenURL", decision="allow"):
        """Audit lines per source for service with decision."""
        needle_s, needle_d = f" VMFED_SERVICE={service} ", f" VMFED_DECISION={decision} "
        counts = {}
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if needle_s in line and needle_d in line:
                    src = line.split(" VMFED_SOURCE=", 1)[1].split(" ", 1)[0]
                    counts[src] = counts.get(src, 0) + 1
        return counts


class Agents:
    """One load-client agent process for the target VMs."""

    def __init__(self, client, h, vms, holds=()):
        args = [client, "agent", h.state_dir]
        for src, n, total in holds:
            args += ["--hold", f"{src}:{n}:{total}"]
        self.proc = subprocess.Popen(args + list(vms), stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline()
        assert line == b"ready\n", f"agents did not start: {line!r}"

    def stats(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, f"agent process failed ({self.proc.returncode})"
        return json.loads(out)


def guests(client, h, targets, calls, window, vms):
    return subprocess.Popen([client, "guests", h.state_dir, ",".join(targets), str(calls), str(window)] + list(vms),
                            stdout=subprocess.PIPE, preexec_fn=_die_with_parent)


def finish(proc, what, timeout=900):
    out, _ = proc.communicate(timeout=timeout)
    res = json.loads(out) if out.strip() else {}
    assert proc.returncode == 0 and res.get("failed") == 0 and res.get("wrong") == 0, \
        f"{what}: not every call succeeded ({proc.returncode}): {res}"
    assert res["ok"] == res["calls"], f"{what}: {res}"
    return res


def check_delivered(stats, expected, what):
    """Each source's URLs reached its target's agent exactly once each."""
    for src, n in expected.items():
        s = stats.get(src)
        assert s and s["received"] == n and s["distinct"] == n and s["dups"] == 0 and s["bad"] == 0 \
            and s["still_held"] == 0, f"{what}: {src} should have delivered {n} distinct URLs: {s}"
    bad = stats.get("?")
    assert not bad, f"{what}: malformed URLs arrived: {bad}"


def check_audited(h, expected, what):
    counts = h.audited()
    for src, n in expected.items():
        assert counts.get(src, 0) == n, f"{what}: {src}: {counts.get(src, 0)} audit lines for {n} requests"


def merge(results):
    """Combine the JSON of several guest processes (latencies: the worst process' percentiles)."""
    calls = sum(r["calls"] for r in results)
    start = min(r["start_us"] for r in results)
    end = max(r["end_us"] for r in results)
    return {"calls": calls, "seconds": (end - start) / 1e6, "calls_per_s": calls / ((end - start) / 1e6),
            "p50_us": max(r["p50_us"] for r in results), "p99_us": max(r["p99_us"] for r in results),
            "max_in_flight": max(r["max_in_flight"] for r in results), "end_us": end}


# ---- scenarios --------------------------------------------------------------------------------

def routed(h, client, calls=CALLS, window=8, audit=True):
    agents = Agents(client, h, TARGETS)
    half = len(GUESTS) // 2
    procs = [guests(client, h, TARGETS, calls, window, GUESTS[:half]),
             guests(client, h, TARGETS, calls, window, GUESTS[half:])]
    results = [finish(p, "64 guests") for p in procs]
    check_delivered(agents.stats(), {g: calls for g in GUESTS}, "64 guests")
    if audit:
        check_audited(h, {g: calls for g in GUESTS}, "64 guests")
    return merge(results)


def inflight(h, client, audit=True):
    flood_total = 3 * THROTTLE
    agents = Agents(client, h, ["t0", "t1"], holds=[("g00", IN_FLIGHT, IN_FLIGHT), ("g01", THROTTLE, flood_total)])
    # 2000 at once: t0's agent answers none of them before it holds all 2000.
    r1 = finish(guests(client, h, ["t0"], IN_FLIGHT, 0, ["g00"]), f"{IN_FLIGHT} in flight")
    # 3 x 4096 at once, answered 4096 at a time: throttled at 4096, never refused.
    r2 = finish(guests(client, h, ["t1"], flood_total, 0, ["g01"]), f"{flood_total} at once")
    stats = agents.stats()
    check_delivered(stats, {"g00": IN_FLIGHT, "g01": flood_total}, "in flight")
    assert stats["g00"]["max_held"] == IN_FLIGHT, stats["g00"]
    assert stats["g01"]["max_held"] == THROTTLE, stats["g01"]
    # Two VMs, each the other's target, 2000 at once each way: no VM waits for
    # itself through a channel that is not read.
    r3 = finish(guests(client, h, ["g03", "g02"], IN_FLIGHT, 0, ["g02", "g03"]), "each other")
    check_delivered(r3["agent"], {"g02": IN_FLIGHT, "g03": IN_FLIGHT}, "each other")
    if audit:
        check_audited(h, {"g00": IN_FLIGHT, "g01": flood_total, "g02": IN_FLIGHT, "g03": IN_FLIGHT}, "in flight")
    return {"max_in_flight_one_vm": stats["g00"]["max_held"], "throttled_at": stats["g01"]["max_held"],
            "client_in_flight": max(r1["max_in_flight"], r2["max_in_flight"])}


def noreader_flood(h, out):
    """Routed calls on the noreader channel, never reading a reply: must end in a hang-up."""
    p = RawPeer(h.channel_path("noreader"))
    try:
        for i in range(400000):
            p.send(ROOT, GUEST, "OpenURL", args=[("s", f"https://load.test/noreader/{i}"), ("s", "t0")])
        out.append("never cut off")
    except OSError:
        out.append("cut off")


def flood(h, client, with_flooder=True, with_noreader=True, victim_calls=VICTIM_CALLS, audit=True):
    agents = Agents(client, h, ["t0", "t1"])
    fl = guests(client, h, ["t1"], FLOOD_CALLS, 0, ["flooder"]) if with_flooder else None
    nr_out = []
    nr = threading.Thread(target=noreader_flood, args=(h, nr_out)) if with_noreader else None
    if nr:
        nr.start()
    v = finish(guests(client, h, ["t0"], victim_calls, 4, VICTIMS), "victims")
    f = finish(fl, "flooder") if fl else None
    if nr:
        nr.join(120)
        assert nr_out == ["cut off"], f"the peer that never reads: {nr_out or 'still sending'}"
        h.wait_log("does not read its replies")
    stats = agents.stats()
    expect = {g: victim_calls for g in VICTIMS}
    if f:
        expect["flooder"] = FLOOD_CALLS
    check_delivered(stats, expect, "flood")
    if audit:
        check_audited(h, expect, "flood")
    res = merge([v])
    if f:
        res["flooder_calls_per_s"] = f["calls_per_s"] if "calls_per_s" in f else \
            f["calls"] / ((f["end_us"] - f["start_us"]) / 1e6)
        res["flood_outlasted_victims"] = f["end_us"] > v["end_us"]
    return res


def main(vmfedd, client, mode):
    h = LoadHarness(vmfedd, vms=VMS, policy=POLICY)
    rc = run(h, vmfedd, client, mode)
    assert not h.sanitizer_report, "vmfedd:\n" + h.sanitizer_report
    if rc == 0 and mode != "bench":
        print("ok")
    return rc


def run(h, vmfedd, client, mode):
    with h:
        h.channel_path = lambda n: os.path.join(h.state_dir, "channels", n + ".sock")
        h.wait_log = lambda text: Harness._wait(lambda: text in open(h.log_path, errors="replace").read(),
                                                f"'{text}' in the broker's log", 30)
        if mode == "routed":
            r = routed(h, client)
            print(f"64 guests x {CALLS} routed calls: all correct, {r['calls_per_s']:.0f} calls/s; "
                  f"broker peak RSS {h.peak_rss_kib()} KiB")
        elif mode == "inflight":
            r = inflight(h, client)
            print(f"{r['max_in_flight_one_vm']} requests in flight from one VM at once, "
                  f"throttled at {r['throttled_at']}, none failed; broker peak RSS {h.peak_rss_kib()} KiB")
        elif mode == "flood":
            r = flood(h, client)
            print(f"victims: {r['calls']} calls, all correct, p50 {r['p50_us']:.0f} us p99 {r['p99_us']:.0f} us "
                  f"beside a flooder ({FLOOD_CALLS} calls, all correct) and a non-reader (cut off); "
                  f"broker peak RSS {h.peak_rss_kib()} KiB")
        elif mode == "bench":
            # Audit lines are checked by the tests; here they would mix the runs.
            r = routed(h, client, audit=False)
            i = inflight(h, client, audit=False)
            alone = flood(h, client, with_flooder=False, with_noreader=False, audit=False)
            flooded = flood(h, client, with_noreader=False, audit=False)
            line = {"benchmark": "load", "guests": len(GUESTS), "calls_per_guest": CALLS,
                    "calls_per_s": round(r["calls_per_s"]), "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                    "window_per_guest": 8,
                    "max_in_flight_one_vm": i["max_in_flight_one_vm"], "throttled_at": i["throttled_at"],
                    "victims": len(VICTIMS), "victim_calls": alone["calls"],
                    "victim_p50_us": alone["p50_us"], "victim_p99_us": alone["p99_us"],
                    "victim_flooded_p50_us": flooded["p50_us"], "victim_flooded_p99_us": flooded["p99_us"],
                    "flooded_ratio_p50": round(flooded["p50_us"] / alone["p50_us"], 2),
                    "flooded_ratio_p99": round(flooded["p99_us"] / alone["p99_us"], 2),
                    "flooder_calls_per_s": round(flooded["flooder_calls_per_s"]),
                    "flood_outlasted_victims": flooded["flood_outlasted_victims"],
                    "broker_peak_rss_kib": h.peak_rss_kib()}
            sys.stdout.write(json.dumps(line) + "\n")
            return 0  # the JSON line is all of stdout
        else:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
