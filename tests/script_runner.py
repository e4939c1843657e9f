"""Run several generated scripts in one fresh interpreter, one after another, each as
`__main__` in its own namespace; each script's stdout, stderr and exit code go to
<script>.out, <script>.err and <script>.rc. TensorFlow is imported once for the lot
(tests/test_codegen.py: 22 interpreters spent most of their time importing it); one preset's
script still runs alone in its own interpreter, as a user runs it.

    python tests/script_runner.py a.py b.py ...
"""
import contextlib
import io
import runpy
import sys
import traceback
from pathlib import Path


def run_one(path: Path) -> None:
    out, err, rc = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - reported like an interpreter would
            traceback.print_exc()
            rc = 1
    for ext, text in ((".out", out.getvalue()), (".err", err.getvalue()), (".rc", str(rc))):
        path.with_suffix(ext).write_text(text)
    import keras
    keras.backend.clear_session()  # the next script starts from no models


if __name__ == "__main__":
    for p in sys.argv[1:]:
        run_one(Path(p))
