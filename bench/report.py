#!/usr/bin/python3
"""Turns bench/run.sh's raw measurements into results.json and RESULTS.md.

raw.tsv lines: KEY <tab> SERVER <tab> VALUE   (one per round; VALUE "nan" = that round failed)
               note <tab> SERVER <tab> TEXT
Exit status 1 when a measurement produced no number in some round (never on performance).
A "Findings" block between <!-- findings:begin --> and <!-- findings:end --> in an existing
RESULTS.md is kept across runs.
"""
import argparse
import json
import math
import os
import re
import statistics
import sys

# (key, unit, description, servers, lower_is_better)
MEASUREMENTS = [
    ("blob_c1_MBps", "MB/s", "1. cached blob, 1 client", ["portcullis", "distribution", "nginx"], False),
    ("blob_c8_MBps", "MB/s", "1. cached blob, 8 clients (aggregate)", ["portcullis", "distribution", "nginx"], False),
    ("mdig_rps", "req/s", "2. manifest by digest", ["portcullis", "distribution", "nginx"], False),
    ("mdig_p99_ms", "ms", "2. manifest by digest, p99", ["portcullis", "distribution", "nginx"], True),
    ("mdig_wrk_timeouts", "count", "2. wrk timeouts (> 5 s)", ["portcullis", "distribution", "nginx"], True),
    ("mdig_listen_overflows", "count", "2. kernel ListenOverflows during the wrk run", ["portcullis", "distribution", "nginx"], True),
    ("mtag_rps", "req/s", "3. manifest by tag within TTL", ["portcullis", "distribution"], False),
    ("mtag_p99_ms", "ms", "3. manifest by tag, p99", ["portcullis", "distribution"], True),
    ("mtag_wrk_timeouts", "count", "3. wrk timeouts (> 5 s)", ["portcullis", "distribution"], True),
    ("mtag_listen_overflows", "count", "3. kernel ListenOverflows during the wrk run", ["portcullis", "distribution"], True),
    ("cold8_upstream_gets", "GETs", "4. 8 cold pulls: upstream blob GETs", ["portcullis", "distribution"], True),
    ("cold8_upstream_bytes", "MiB", "4. 8 cold pulls: upstream blob bytes", ["portcullis", "distribution"], True),
    ("cold8_wall_s", "s", "4. 8 cold pulls: wall time", ["portcullis", "distribution"], True),
    ("cold8_client_med_s", "s", "4. 8 cold pulls: median client's time", ["portcullis", "distribution"], True),
    ("cold8_client_max_s", "s", "4. 8 cold pulls: slowest client's time", ["portcullis", "distribution"], True),
    ("cold1_wall_s", "s", "4. one cold pull (nginx: the same file, page cache: the limit)", ["portcullis", "distribution", "nginx"], True),
    ("cold1_upstream_gets", "GETs", "4. one cold pull: upstream blob GETs", ["portcullis", "distribution"], True),
    ("cold1_upstream_bytes", "MiB", "4. one cold pull: upstream blob bytes", ["portcullis", "distribution"], True),
    ("direct_wall_s", "s", "4. one direct pull from the upstream: wall time", ["upstream"], True),
    ("direct8_wall_s", "s", "4. 8 concurrent direct pulls from the upstream: wall time", ["upstream"], True),
    ("direct8_client_med_s", "s", "4. 8 concurrent direct pulls: median client's time", ["upstream"], True),
    ("direct8_client_max_s", "s", "4. 8 concurrent direct pulls: slowest client's time", ["upstream"], True),
    ("blob_c16_MBps", "MB/s", "5. cached blob, 16 clients (aggregate)", ["portcullis", "distribution", "nginx"], False),
    ("rss_peak_MiB", "MiB", "5. peak RSS, 16 clients (VmHWM)", ["portcullis", "distribution", "nginx"], True),
    ("rss_sampled_MiB", "MiB", "5. peak RSS, 16 clients (VmRSS sampled 10/s)", ["portcullis", "distribution", "nginx"], True),
    ("mtag_policy_rps", "req/s", "3p. manifest by tag within TTL, with --policy (cached verdict)", ["portcullis"], False),
    ("mtag_policy_p99_ms", "ms", "3p. manifest by tag, with --policy, p99", ["portcullis"], True),
    ("mtag_policy_ratio", "×", "3p. req/s with --policy / without, same round (median of rounds)", ["portcullis"], False),
    ("tag_cold_ms", "ms", "6. first request of a new tag (cold)", ["portcullis", "distribution"], True),
    ("tag_warm_ms", "ms", "6. second request of that tag (warm)", ["portcullis", "distribution"], True),
    ("tag_cold_policy_ms", "ms", "6p. first request of a new signed tag, with --policy (cold: signature lookup + verification)", ["portcullis"], True),
    ("tag_warm_policy_ms", "ms", "6p. second request of that tag, with --policy (warm)", ["portcullis"], True),
    ("upstream_blob_gets_during_cached_tests", "GETs", "upstream blob GETs during tests 1-3 (want 0)", ["all"], True),
]


def num(v):
    try:
        f = float(v)
    except ValueError:
        return float("nan")
    return f


def median(xs):
    good = [x for x in xs if not math.isnan(x)]
    return statistics.median(good) if good else None


def fmt(v, unit=""):
    if v is None:
        return "—"
    if unit in ("req/s", "MB/s") or abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if v != int(v) else f"{v:.0f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


# Test 4 keys (the rows --cold-only keeps, and the ones measured for a --baseline-bin binary).
COLD_KEYS = ("cold8_", "cold1_", "direct")
BASELINE_KEYS = ("cold8_upstream_gets", "cold8_upstream_bytes", "cold8_wall_s", "cold8_client_med_s",
                 "cold8_client_max_s", "cold1_wall_s", "cold1_upstream_gets", "cold1_upstream_bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", nargs="*", default=[])
    a = ap.parse_args()
    meta = dict(kv.split("=", 1) for kv in a.meta)
    mid_bytes = int(meta.get("mid_bytes", "0") or 0)

    raw, notes = {}, []
    for line in open(a.raw):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            continue
        k, s, v = parts
        if k == "note":
            notes.append(f"{s}: {v}")
            continue
        raw.setdefault(k, {}).setdefault(s, []).append(num(v))
    for key in ("cold8_upstream_bytes", "cold1_upstream_bytes"):  # bytes -> MiB for the table
        if key in raw:
            raw[key] = {s: [x / 2**20 for x in xs] for s, xs in raw[key].items()}

    problems = []
    med = {}
    has_policy = meta.get("has_policy") == "1"
    measurements = [mm for mm in MEASUREMENTS if has_policy or "policy" not in mm[0]]
    cold_only = meta.get("cold_only") == "1"
    has_baseline = bool(meta.get("baseline_bin"))
    if cold_only:
        measurements = [mm for mm in measurements if mm[0].startswith(COLD_KEYS)]
    if has_baseline:
        measurements = [(k, u, d, sv + ["baseline"] if k in BASELINE_KEYS else sv, lo)
                        for k, u, d, sv, lo in measurements]
    for key, unit, _, servers, _ in measurements:
        med[key] = {}
        for s in servers:
            xs = raw.get(key, {}).get(s, [])
            if not xs:
                problems.append(f"{key}/{s}: no value")
            elif any(math.isnan(x) for x in xs):
                problems.append(f"{key}/{s}: {sum(math.isnan(x) for x in xs)} of {len(xs)} rounds failed")
            med[key][s] = median(xs)

    m = lambda k, s: med.get(k, {}).get(s)

    def paired(ka, sa, kb, sb):
        """Median over rounds of ka[sa] / kb[sb] taken in the same round (less exposed to the
        machine's drift than a ratio of medians); None unless both have the same rounds."""
        xa, xb = raw.get(ka, {}).get(sa, []), raw.get(kb, {}).get(sb, [])
        if not xa or len(xa) != len(xb):
            return None
        return median([a / b if b else float("nan") for a, b in zip(xa, xb)])
    P, D, N = "portcullis", "distribution", "nginx"
    ratios = {
        "blob_c1_P/D": ratio(m("blob_c1_MBps", P), m("blob_c1_MBps", D)),
        "blob_c1_P/N": ratio(m("blob_c1_MBps", P), m("blob_c1_MBps", N)),
        "blob_c8_P/D": ratio(m("blob_c8_MBps", P), m("blob_c8_MBps", D)),
        "blob_c8_P/N": ratio(m("blob_c8_MBps", P), m("blob_c8_MBps", N)),
        "blob_c16_P/D": ratio(m("blob_c16_MBps", P), m("blob_c16_MBps", D)),
        "blob_c16_P/N": ratio(m("blob_c16_MBps", P), m("blob_c16_MBps", N)),
        "mdig_rps_P/D": ratio(m("mdig_rps", P), m("mdig_rps", D)),
        "mdig_rps_P/N": ratio(m("mdig_rps", P), m("mdig_rps", N)),
        "mtag_rps_P/D": ratio(m("mtag_rps", P), m("mtag_rps", D)),
        "cold8_upstream_bytes_P/image": ratio(m("cold8_upstream_bytes", P), mid_bytes / 2**20 if mid_bytes else None),
        "cold8_upstream_bytes_D/image": ratio(m("cold8_upstream_bytes", D), mid_bytes / 2**20 if mid_bytes else None),
        "cold8_wall_P/direct": ratio(m("cold8_wall_s", P), m("direct_wall_s", "upstream")),
        "cold8_wall_D/direct": ratio(m("cold8_wall_s", D), m("direct_wall_s", "upstream")),
        "cold8_wall_P/direct8": ratio(m("cold8_wall_s", P), m("direct8_wall_s", "upstream")),
        "cold8_wall_D/direct8": ratio(m("cold8_wall_s", D), m("direct8_wall_s", "upstream")),
        "tag_cold/warm_P": ratio(m("tag_cold_ms", P), m("tag_warm_ms", P)),
        # Paired per round when measured so; the ratio of the medians otherwise.
        "mtag_policy/mtag_P": (m("mtag_policy_ratio", P) if m("mtag_policy_ratio", P) is not None
                               else ratio(m("mtag_policy_rps", P), m("mtag_rps", P))),
        "cold1_wall_P/direct": ratio(m("cold1_wall_s", P), m("direct_wall_s", "upstream")),
        "cold1_wall_D/direct": ratio(m("cold1_wall_s", D), m("direct_wall_s", "upstream")),
        # paired per round (medians of the per-round ratios)
        "cold1_P/direct_paired": paired("cold1_wall_s", P, "direct_wall_s", "upstream"),
        "cold1_D/direct_paired": paired("cold1_wall_s", D, "direct_wall_s", "upstream"),
        "cold1_P/D_paired": paired("cold1_wall_s", P, "cold1_wall_s", D),
        "cold1_P/N_paired": paired("cold1_wall_s", P, "cold1_wall_s", N),
        "cold8_P/D_paired": paired("cold8_wall_s", P, "cold8_wall_s", D),
        "cold8_maxclient_P/direct8_paired": paired("cold8_client_max_s", P, "direct8_client_max_s", "upstream"),
        "cold8_maxclient_D/direct8_paired": paired("cold8_client_max_s", D, "direct8_client_max_s", "upstream"),
        "cold1_P/baseline_paired": paired("cold1_wall_s", P, "cold1_wall_s", "baseline"),
        "cold8_P/baseline_paired": paired("cold8_wall_s", P, "cold8_wall_s", "baseline"),
        "cold8_maxclient_P/baseline_paired": paired("cold8_client_max_s", P, "cold8_client_max_s", "baseline"),
        "mtag_policy_P/D": ratio(m("mtag_policy_rps", P), m("mtag_rps", D)),
        "tag_cold_policy/tag_cold_P": ratio(m("tag_cold_policy_ms", P), m("tag_cold_ms", P)),
    }

    def target(name, value, ok, shown):
        return {"target": name, "value": value, "shown": shown,
                "status": "not measured" if value is None else ("met" if ok(value) else "missed")}

    r = ratios
    pct = lambda v: "—" if v is None else f"{v * 100:.0f}%"
    x = lambda v: "—" if v is None else f"{v:.2f}×"
    r_bd = {"_c1": r["blob_c1_P/D"], "_c8": r["blob_c8_P/D"]}
    r_bn = {"_c1": r["blob_c1_P/N"], "_c8": r["blob_c8_P/N"]}
    min_bd = None if None in r_bd.values() else min(r_bd.values())
    min_bn = None if None in r_bn.values() else min(r_bn.values())
    bytes_rounds = raw.get("cold8_upstream_bytes", {}).get(P, [])
    all_one = bool(bytes_rounds) and mid_bytes and all(abs(b - mid_bytes / 2**20) < 1e-6 for b in bytes_rounds)
    targets = [
        target("1. cached blob ≥ 1.0× distribution (1 and 8 clients; the lower)", min_bd, lambda v: v >= 1.0,
               f"1 client {x(r['blob_c1_P/D'])}, 8 clients {x(r['blob_c8_P/D'])}"),
        target("1. cached blob ≥ 80% of nginx (1 and 8 clients; the lower)", min_bn, lambda v: v >= 0.8,
               f"1 client {pct(r['blob_c1_P/N'])}, 8 clients {pct(r['blob_c8_P/N'])}"),
        target("2. manifest by digest ≥ 10× distribution req/s", r["mdig_rps_P/D"], lambda v: v >= 10, x(r["mdig_rps_P/D"])),
        target("2. manifest by digest ≥ 30% of nginx req/s", r["mdig_rps_P/N"], lambda v: v >= 0.3, pct(r["mdig_rps_P/N"])),
        target("2. manifest by digest p99 ≤ 5 ms", m("mdig_p99_ms", P), lambda v: v <= 5, f"{fmt(m('mdig_p99_ms', P))} ms"),
        target("3. tag within TTL ≥ 30× distribution req/s", r["mtag_rps_P/D"], lambda v: v >= 30, x(r["mtag_rps_P/D"])),
        target("4. upstream bytes for 8 cold pulls = 1× the blob (every round)",
               r["cold8_upstream_bytes_P/image"], lambda v: bool(all_one),
               f"{x(r['cold8_upstream_bytes_P/image'])} (distribution {x(r['cold8_upstream_bytes_D/image'])})"),
        target("4. 8 cold pulls wall ≤ 1.2× one direct pull", r["cold8_wall_P/direct"], lambda v: v <= 1.2,
               f"{x(r['cold8_wall_P/direct'])} (distribution {x(r['cold8_wall_D/direct'])})"),
        target("4. one cold pull ≤ 1.2× one direct pull (paired per round)", r["cold1_P/direct_paired"],
               lambda v: v <= 1.2, f"{x(r['cold1_P/direct_paired'])} (distribution {x(r['cold1_D/direct_paired'])})"),
        target("4. one cold pull faster than distribution's (paired per round)", r["cold1_P/D_paired"],
               lambda v: v < 1.0, x(r["cold1_P/D_paired"])),
        target("4. 8 cold pulls: wall ≤ distribution's (paired per round)", r["cold8_P/D_paired"],
               lambda v: v <= 1.0, x(r["cold8_P/D_paired"])),
        target("4. 8 cold pulls: slowest client ≤ slowest of 8 concurrent direct pulls (paired per round)",
               r["cold8_maxclient_P/direct8_paired"], lambda v: v <= 1.0,
               f"{x(r['cold8_maxclient_P/direct8_paired'])} (distribution {x(r['cold8_maxclient_D/direct8_paired'])})"),
        target("5. peak RSS ≤ 150 MiB (16 clients)", m("rss_peak_MiB", P), lambda v: v <= 150, f"{fmt(m('rss_peak_MiB', P))} MiB"),
        target("3. (with --policy) tag within TTL ≥ 30× distribution req/s", r["mtag_policy_P/D"], lambda v: v >= 30,
               x(r["mtag_policy_P/D"]) if has_policy else "policy not in the proxy"),
        target("6. cached verdicts cost < 5% req/s (tag within TTL, policy vs none)",
               None if r["mtag_policy/mtag_P"] is None else 1 - r["mtag_policy/mtag_P"], lambda v: v < 0.05,
               (f"{(1 - r['mtag_policy/mtag_P']) * 100:.1f}% (median of per-round ratios; medians: policy "
                f"{fmt(m('mtag_policy_rps', P), 'req/s')} vs {fmt(m('mtag_rps', P), 'req/s')} req/s)")
               if r["mtag_policy/mtag_P"] is not None
               else "policy not in the proxy"),
    ]

    if cold_only:
        targets = [t for t in targets if t["target"].startswith("4.")]

    ok = not problems
    result = {
        "ok": ok, "problems": problems, "machine": {k: meta.get(k) for k in (
            "nproc", "cpu", "ram_kib", "kernel", "date", "commit", "version", "load_before", "load_after",
            "registry_version", "nginx_version")},
        "config": {k: meta.get(k) for k in ("mode", "rounds", "wrk_secs", "wrk_threads", "wrk_conns", "big_bytes",
                                             "mid_bytes", "manifest_bytes", "wall_s", "has_policy")},
        "raw": raw, "median": med, "ratios": ratios, "targets": targets, "notes": notes,
        "errors": meta.get("errors", ""),
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        f.write(json.dumps(_nan_to_none(result), indent=1) + "\n")

    # ---- RESULTS.md
    md_path = os.path.join(a.out, "RESULTS.md")
    findings = None
    if os.path.exists(md_path):
        old = open(md_path).read()
        mm = re.search(r"<!-- findings:begin -->.*?<!-- findings:end -->", old, re.S)
        if mm:
            findings = mm.group(0)
    big_mib = int(meta.get("big_bytes", "0")) // 2**20
    ram_gib = int(meta.get("ram_kib", "0")) / 2**20
    L = []
    L.append("# Portcullis benchmark results\n")
    L.append(f"Generated by `bench/run.sh{' --smoke' if meta.get('mode') == 'smoke' else ''}` "
             f"({meta.get('mode')} mode, {meta.get('rounds')} round(s), medians; wall {meta.get('wall_s')} s). "
             "See bench/README.md for the method.\n")
    if meta.get("mode") == "smoke":
        L.append("**Smoke mode: a 64 MiB blob, 2 s wrk runs, 1 round. The figures only show that every "
                 "measurement runs; they say nothing about performance.**\n")
    L.append("| machine | |\n|---|---|")
    L.append(f"| nproc | {meta.get('nproc')} |")
    L.append(f"| CPU | {meta.get('cpu')} |")
    L.append(f"| RAM | {ram_gib:.1f} GiB |")
    L.append(f"| kernel | {meta.get('kernel')} |")
    L.append(f"| date (UTC) | {meta.get('date')} |")
    L.append(f"| Portcullis commit | {meta.get('commit')} |")
    L.append(f"| peers | {meta.get('registry_version')}; {meta.get('nginx_version')} |")
    L.append(f"| load average before / after | {meta.get('load_before')} / {meta.get('load_after')} |")
    L.append("")
    L.append(f"Blob: {big_mib} MiB incompressible; image for test 4: a {int(meta.get('mid_bytes', '0')) // 2**20} MiB "
             f"layer; manifest {meta.get('manifest_bytes')} bytes (nginx serves a file of the same bytes). "
             f"wrk -t{meta.get('wrk_threads')} -c{meta.get('wrk_conns')} -d{meta.get('wrk_secs')}s --latency. "
             "All servers, wrk and curl share the same cores. MB = 10^6 bytes.\n")
    L.append("| measurement | unit | Portcullis | distribution | nginx | Portcullis / distribution | Portcullis / nginx |")
    L.append("|---|---|---|---|---|---|---|")
    ratio_keys = {"blob_c1_MBps": ("blob_c1_P/D", "blob_c1_P/N"), "blob_c8_MBps": ("blob_c8_P/D", "blob_c8_P/N"),
                  "blob_c16_MBps": ("blob_c16_P/D", "blob_c16_P/N"), "mdig_rps": ("mdig_rps_P/D", "mdig_rps_P/N"),
                  "mtag_rps": ("mtag_rps_P/D", None)}
    for key, unit, desc, servers, lower in measurements:
        if servers == ["upstream"]:
            L.append(f"| {desc} | {unit} | {fmt(m(key, 'upstream'))} (upstream) | | | | |")
            continue
        if key == "upstream_blob_gets_during_cached_tests":
            L.append(f"| {desc} | {unit} | {fmt(m(key, 'all'))} (all) | | | | |")
            continue
        cells = [fmt(m(key, s), unit) if s in servers else "n/a" for s in (P, D, N)]
        if key == "cold1_wall_s":  # the limit is the nginx column: shown, not divided
            cells[2] = f"{cells[2]} (file)"
        rd, rn = ratio_keys.get(key, (None, None))
        if key in ("mdig_p99_ms", "mtag_p99_ms", "cold8_wall_s", "cold1_wall_s", "cold8_client_med_s", "cold8_client_max_s", "cold8_upstream_bytes", "rss_peak_MiB",
                   "rss_sampled_MiB", "tag_cold_ms", "tag_warm_ms", "cold8_upstream_gets", "mdig_wrk_timeouts",
                   "mdig_listen_overflows", "mtag_wrk_timeouts", "mtag_listen_overflows"):
            rdv, rnv = ratio(m(key, P), m(key, D)), ratio(m(key, P), m(key, N)) if N in servers else None
        else:
            rdv, rnv = (r[rd] if rd else None), (r[rn] if rn else None)
        L.append(f"| {desc} | {unit} | {' | '.join(cells)} | {x(rdv) if rdv is not None else ''} | "
                 f"{x(rnv) if rnv is not None else ''} |")
    L.append("")
    L.append(f"Test 4 ratios: upstream bytes / blob size: Portcullis {x(r['cold8_upstream_bytes_P/image'])}, "
             f"distribution {x(r['cold8_upstream_bytes_D/image'])}; wall / one direct pull: Portcullis "
             f"{x(r['cold8_wall_P/direct'])}, distribution {x(r['cold8_wall_D/direct'])}; wall / 8 concurrent direct "
             f"pulls: Portcullis {x(r['cold8_wall_P/direct8'])}, distribution {x(r['cold8_wall_D/direct8'])}; "
             f"one cold pull / one direct pull: Portcullis {x(r['cold1_wall_P/direct'])}, distribution "
             f"{x(r['cold1_wall_D/direct'])}; paired per round (median of per-round ratios): one cold pull / "
             f"direct Portcullis {x(r['cold1_P/direct_paired'])}, distribution {x(r['cold1_D/direct_paired'])}; "
             f"Portcullis / distribution: one cold pull {x(r['cold1_P/D_paired'])}, 8 cold pulls "
             f"{x(r['cold8_P/D_paired'])}; Portcullis / nginx file {x(r['cold1_P/N_paired'])}. "
             f"Test 6: cold / warm for Portcullis {x(r['tag_cold/warm_P'])}."
             + (f" With --policy: tag req/s {x(r['mtag_policy/mtag_P'])} of no policy, {x(r['mtag_policy_P/D'])} "
                f"distribution; cold first request {x(r['tag_cold_policy/tag_cold_P'])} of no policy." if has_policy else "")
             + "\n")
    if has_baseline:
        L.append(f"Test 4 side by side with the baseline binary `{meta.get('baseline_bin')}` (same rounds, "
                 "its turn rotating with the others):\n")
        L.append("| measurement | unit | Portcullis | baseline | Portcullis / baseline (paired per round) |")
        L.append("|---|---|---|---|---|")
        pairs = {"cold1_wall_s": r["cold1_P/baseline_paired"], "cold8_wall_s": r["cold8_P/baseline_paired"],
                 "cold8_client_max_s": r["cold8_maxclient_P/baseline_paired"]}
        for key, unit, desc, servers, _ in measurements:
            if "baseline" in servers:
                pr = pairs.get(key)
                L.append(f"| {desc} | {unit} | {fmt(m(key, P))} | {fmt(m(key, 'baseline'))} | "
                         f"{x(pr) if pr is not None else ''} |")
        L.append("")
    L.append("## Targets (from the issue; reported, never asserted)\n")
    L.append("| target | measured | status |\n|---|---|---|")
    for t in targets:
        L.append(f"| {t['target']} | {t['shown']} | {t['status']} |")
    L.append("")
    L.append("## Notes\n")
    for n in dict.fromkeys(notes):
        L.append(f"- {n}")
    if problems:
        L.append(f"- **measurements without a number:** {'; '.join(problems)}")
    if meta.get("errors"):
        L.append(f"- errors logged: `{meta['errors'][:500]}`")
    L.append("")
    L.append("## Findings\n")
    L.append(findings or "<!-- findings:begin -->\n(none written for this run)\n<!-- findings:end -->")
    L.append("")
    with open(md_path, "w") as f:
        f.write("\n".join(L))
    print(f"wrote {md_path} and {os.path.join(a.out, 'results.json')}")
    if problems:
        print("measurements without a number: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


def _nan_to_none(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_nan_to_none(v) for v in o]
    return o


if __name__ == "__main__":
    sys.exit(main())
