import subprocess
import sys

import genfast


def test_every_exported_name_resolves():
    for name in genfast.__all__:
        assert getattr(genfast, name) is not None, name


def test_import_is_light():
    code = "import sys, genfast; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
