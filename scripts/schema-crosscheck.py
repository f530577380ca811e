#!/usr/bin/env python3
"""Verdicts of the PyPI package kubernetes-validate (strict schemas) for the objects of YAML files.

Usage: schema-crosscheck.py VERSION FILE...

Prints one JSON object per input object: {"file", "index", "kind", "name", "valid", "error"}.
With --definitions instead of files, prints the path of the package's _definitions.json for
VERSION (strict). The validator's cross-check test (validator/tests/schema_crosscheck.rs)
compares these verdicts with its own.
"""

import json
import os
import sys

try:
    import kubernetes_validate
    import yaml
except ImportError as e:  # the caller skips the cross-check
    print(f"missing: {e}", file=sys.stderr)
    sys.exit(3)


def definitions(version):
    base = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    return os.path.join(base, f"v{version}.0-local-strict", "_definitions.json")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    version = argv[0]
    if argv[1] == "--definitions":
        print(definitions(version))
        return 0
    for path in argv[1:]:
        with open(path, encoding="utf-8") as f:
            documents = [d for d in yaml.safe_load_all(f) if d is not None]
        for index, obj in enumerate(documents):
            verdict = {
                "file": path,
                "index": index,
                "kind": obj.get("kind", ""),
                "name": (obj.get("metadata") or {}).get("name", ""),
                "valid": True,
                "error": "",
            }
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                verdict["valid"] = False
                where = ".".join(str(p) for p in e.path)
                verdict["error"] = f"{where}: {e.message}"[:300]
            except kubernetes_validate.SchemaNotFoundError as e:
                verdict["valid"] = None
                verdict["error"] = e.message
            print(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
