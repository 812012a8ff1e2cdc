"""Regenerate the Python code and .pyi stubs for protos/ into zoho/.

The output tree mirrors protos/ (protos/zoho/broker/v1/broker.proto ->
zoho/broker/v1/broker_pb2.py), so the generated imports resolve as written.

    python scripts/gen_protos.py          # regenerate
    python scripts/gen_protos.py --check  # exit 1 if the committed code drifted
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT_PACKAGE = "zoho"
INIT_TEXT = '"""Generated from protos/ by scripts/gen_protos.py. Do not edit."""\n'


def generate(out_dir: Path) -> None:
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # mypy-protobuf's plugins sit beside this interpreter, which need not be on PATH.
    bindir = Path(sys.executable).parent
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_ROOT}", f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}", f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_ROOT)
    for folder in [out_dir / OUT_PACKAGE, *(out_dir / OUT_PACKAGE).rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").write_text(INIT_TEXT)
    (out_dir / OUT_PACKAGE / "py.typed").write_text("")


def tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root)) for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if zoho/ is out of date")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, committed = Path(tmp) / OUT_PACKAGE, ROOT / OUT_PACKAGE
        if args.check:
            drift = sorted(
                name for name in tree(fresh) | (tree(committed) if committed.exists() else set())
                if not (fresh / name).exists() or not (committed / name).exists()
                or not filecmp.cmp(fresh / name, committed / name, shallow=False)
            )
            if drift:
                print("generated code is out of date; run: python scripts/gen_protos.py")
                print("\n".join(f"  {name}" for name in drift))
                return 1
            print("generated code matches protos/")
            return 0
        shutil.rmtree(committed, ignore_errors=True)
        shutil.copytree(fresh, committed, ignore=shutil.ignore_patterns("__pycache__"))
        print(f"generated {len(tree(committed))} files in {committed.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
