# `edgeq bench` end to end on TinyStories-656K with two schemes and one bad name: every column
# of results.csv is there and sane (sizes ordered by bits, perplexities finite, memory non-zero,
# agreement in [0, 1]), the bad scheme is a failed row, the report and (with gnuplot) the plots
# are written, a re-run takes everything from the cache, and Ctrl-C keeps the finished rows.
#
#     python3 tests/bench_check.py EDGEQ SHARED_DIR OUT_DIR [cuda]     (exit 77: skipped, no model)
#
# With `cuda` (a CUDA build on a GPU machine; not a CTest test) the same checks run with
# --device cuda, and every row must report its peak device memory.
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

edgeq, shared, out = sys.argv[1], sys.argv[2], sys.argv[3]
cuda = len(sys.argv) > 4 and sys.argv[4] == "cuda"
model = os.path.join(shared, "models", "TinyStories-656K")
text = os.path.join(shared, "data", "tinystories_valid_prefix.txt")
if not os.path.isdir(model) or not os.path.isfile(text):
    print("skipped: %s or %s is missing (../shared)" % (model, text))
    sys.exit(77)

COLUMNS = ["scheme", "status", "error", "baseline", "file_bytes", "tensor_bytes", "elements", "bits_per_weight",
           "linear_bytes", "linear_elements", "linear_bits_per_weight", "quantize_seconds", "quantize_cached", "ppl",
           "ppl_uncertainty", "kl_mean", "kl_uncertainty", "kl_p99", "same_top", "prompt_tokens", "prompt_tps_median",
           "prompt_tps_min", "prompt_tps_max", "decode_tokens", "decode_tps_median", "decode_tps_min", "decode_tps_max",
           "peak_rss_bytes", "peak_device_bytes", "agreement", "bytes_per_token", "jetson_tps_peak", "jetson_tps_est",
           "jetson_bytes_needed", "jetson_fits", "pareto"]

args = [edgeq, "bench", "-m", model, "-o", out, "--schemes", "int8-g128,int4-g128,int4-g100", "--eval", text,
        "--ppl-ctx", "128", "--ppl-chunks", "4", "--runs", "2", "--speed-tokens", "32", "--answer-tokens", "16",
        "--threads", "2"] + (["--device", "cuda"] if cuda else [])


def run(extra):
    p = subprocess.run(args + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0, "exit code %d\n%s" % (p.returncode, p.stderr)
    return p


def check(v, what):
    if not v:
        raise AssertionError(what)


def number(row, key):
    v = row[key]
    check(v != "", "%s: %s is empty" % (row["scheme"], key))
    x = float(v)
    check(math.isfinite(x), "%s: %s = %s is not finite" % (row["scheme"], key, v))
    return x


shutil.rmtree(out, ignore_errors=True)
run(["--force"])
with open(os.path.join(out, "results.csv")) as f:
    reader = csv.DictReader(f)
    check(reader.fieldnames == COLUMNS, "results.csv columns: %s" % reader.fieldnames)
    rows = {r["scheme"]: r for r in reader}
check(list(rows) == ["f32", "int8-g128", "int4-g128", "int4-g100"], "rows: %s" % list(rows))
bad = rows.pop("int4-g100")
check(bad["status"] == "failed" and "int4-g100" in bad["error"], "the bad scheme: %s" % bad)

for name, r in rows.items():
    check(r["status"] == "ok", "%s: %s %s" % (name, r["status"], r["error"]))
    bpw, lbpw = number(r, "bits_per_weight"), number(r, "linear_bits_per_weight")
    check(0 < lbpw <= 32 and 0 < bpw <= 32, "%s: bits per weight %g, %g" % (name, bpw, lbpw))
    check(abs(number(r, "tensor_bytes") * 8 / number(r, "elements") / bpw - 1) < 1e-6, "%s: bits per weight is not bytes/elements" % name)
    check(number(r, "file_bytes") > number(r, "tensor_bytes") > number(r, "linear_bytes") > 0, "%s: sizes" % name)
    check(1 < number(r, "ppl") < 1000, "%s: perplexity %s" % (name, r["ppl"]))
    check(number(r, "kl_mean") >= 0 and 0 <= number(r, "same_top") <= 1, "%s: KL %s, same top %s" % (name, r["kl_mean"], r["same_top"]))
    check(number(r, "peak_rss_bytes") > 1e6, "%s: peak memory %s" % (name, r["peak_rss_bytes"]))
    if cuda:
        check(number(r, "peak_device_bytes") > number(r, "linear_bytes"), "%s: peak device memory %s" % (name, r["peak_device_bytes"]))
    else:
        check(r["peak_device_bytes"] == "", "%s: device memory on the CPU" % name)
    for k in ["prompt_tps", "decode_tps"]:
        lo, med, hi = number(r, k + "_min"), number(r, k + "_median"), number(r, k + "_max")
        check(0 < lo <= med <= hi, "%s: %s %g <= %g <= %g" % (name, k, lo, med, hi))
    check(number(r, "prompt_tokens") >= 16 and 1 <= number(r, "decode_tokens") <= 32, "%s: tokens" % name)
    check(0 <= number(r, "agreement") <= 1, "%s: agreement %s" % (name, r["agreement"]))
    check(number(r, "jetson_tps_peak") > number(r, "jetson_tps_est") > 0, "%s: Jetson tok/s" % name)
    check(r["jetson_fits"] == "true" and number(r, "jetson_bytes_needed") > number(r, "tensor_bytes"), "%s: Jetson fit" % name)
    check(number(r, "quantize_seconds") >= 0 and r["quantize_cached"] == "false", "%s: quantize time" % name)

f32, i8, i4 = rows["f32"], rows["int8-g128"], rows["int4-g128"]
check(abs(float(f32["linear_bits_per_weight"]) - 32) < 1e-9, "f32 linear bits %s" % f32["linear_bits_per_weight"])
check(abs(float(i8["linear_bits_per_weight"]) - 8.125) < 1e-9 and abs(float(i4["linear_bits_per_weight"]) - 4.125) < 1e-9,
      "linear bits: %s, %s" % (i8["linear_bits_per_weight"], i4["linear_bits_per_weight"]))
# Fewer bits, fewer bytes; more error.
check(float(f32["file_bytes"]) > float(i8["file_bytes"]) > float(i4["file_bytes"]), "file sizes not ordered by bits")
check(float(f32["bytes_per_token"]) > float(i8["bytes_per_token"]) > float(i4["bytes_per_token"]), "bytes per token")
check(float(f32["kl_mean"]) == 0 and float(f32["agreement"]) == 1, "the baseline against itself")
check(float(i8["kl_mean"]) < float(i4["kl_mean"]), "KL: int8 %s, int4 %s" % (i8["kl_mean"], i4["kl_mean"]))
check(float(i8["agreement"]) >= 0.5, "int8 agrees with f32 on %s of the tokens" % i8["agreement"])
check(i4["pareto"] == "true", "the smallest file is always on the Pareto front")

res = json.load(open(os.path.join(out, "results.json")))
check(len(res["rows"]) == 4 and res["machine"] and res["options"]["runs"] == 2, "results.json")
for r in res["rows"][:3]:
    check(len(r["answers"]) == 4 and all(a["tokens"] and a["text"] for a in r["answers"]), "%s: answers" % r["scheme"])
report = open(os.path.join(out, "report.md")).read()
for s in ["| scheme |", "`int4-g128`", "## Answers", "Once upon a time", "failed", "## How each column is measured"] + \
        (["peak device MiB", "device cuda"] if cuda else []):
    check(s in report, "report.md lacks %r" % s)
if shutil.which("gnuplot"):
    for p in ["ppl_vs_size.svg", "tokens_per_second.svg", "memory.svg"]:
        svg = open(os.path.join(out, "plots", p)).read()
        check("<svg" in svg and "int4-g128" in svg, "plots/%s" % p)
        check("![%s](plots/%s)" % (p, p) in report, "report.md does not show %s" % p)
else:
    check("gnuplot is not installed" in report, "report.md does not say that gnuplot is missing")

# A re-run measures nothing again.
run([])
with open(os.path.join(out, "results.csv")) as f:
    again = {r["scheme"]: r for r in csv.DictReader(f)}
for name in rows:
    check(again[name]["quantize_cached"] == "true", "%s: quantized again" % name)
    check(again[name]["ppl"] == rows[name]["ppl"], "%s: perplexity changed on the cached re-run" % name)
check(json.load(open(os.path.join(out, "results.json")))["rows"][1]["eval_cached"], "evaluated again")

# Ctrl-C (SIGINT to bench alone: it passes it on) once the baseline is written: exit 130 and
# the finished rows are kept. On a machine fast enough to finish first, exit 0 is fine too.
p = subprocess.Popen(args + ["--force"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
t0 = time.time()
while p.poll() is None and time.time() - t0 < 60:
    try:
        if len(json.load(open(os.path.join(out, "results.json")))["rows"]) >= 1 and \
                not json.load(open(os.path.join(out, "results.json")))["rows"][0]["quantize_cached"]:
            break
    except (OSError, ValueError, KeyError, IndexError):
        pass
    time.sleep(0.05)
p.send_signal(signal.SIGINT)
err = p.communicate(timeout=60)[1]
check(p.returncode in (0, 130), "after Ctrl-C: exit code %d\n%s" % (p.returncode, err))
res = json.load(open(os.path.join(out, "results.json")))
if p.returncode == 130:
    check("interrupted" in err, "no message after Ctrl-C: %s" % err)
    check(res["rows"][0]["status"] == "ok", "the finished baseline was not kept: %s" % res["rows"][0])
print("edgeq bench: %d rows checked" % len(rows))
