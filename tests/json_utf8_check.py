#!/usr/bin/env python3
"""Runs a command and checks that its stdout is strict UTF-8 and one JSON object (a model may
sample a token that ends mid-character: `--json` must still be valid).

    python3 tests/json_utf8_check.py PROGRAM ARGS...
"""
import json
import subprocess
import sys

out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, check=True).stdout
try:
    doc = json.loads(out.decode("utf-8"))  # strict: invalid bytes raise
except (UnicodeDecodeError, ValueError) as e:
    sys.exit(f"stdout is not valid UTF-8 JSON: {e}")
if not isinstance(doc, dict) or "text" not in doc:
    sys.exit("no 'text' in the JSON object")
print(f"valid UTF-8 JSON, text of {len(doc['text'])} characters")
