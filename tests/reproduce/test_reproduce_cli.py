"""The command line and `run_study`: the choices, and `--help` without TensorFlow."""

import os
import subprocess
import sys

import pytest

import reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_unknown_study_names_choices(tmp_path):
    match = r"Unknown study\. Expected one of .*Received: study='bogus'"
    with pytest.raises(ValueError, match=match):
        reproduce.run_study("bogus", str(tmp_path))


def test_help_imports_no_tensorflow():
    # The script's folder is first on its path, and the script is named like the package.
    code = (
        "import sys, runpy; sys.argv = ['reproduce.py', '--help']\n"
        "try:\n"
        f"    runpy.run_path({os.path.join(ROOT, 'training', 'reproduce.py')!r}, "
        "run_name='__main__')\n"
        "except SystemExit:\n"  # absl's --help exits with status 1
        "    pass\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print('no tensorflow')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "--study" in result.stdout and "--output_dir" in result.stdout
    assert "no tensorflow" in result.stdout


def test_script_runs_from_its_folder(tmp_path):
    # `python training/reproduce.py` puts training/ first on the path: the wrapper must still
    # import the package, not itself.
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "training", "reproduce.py"), "--study=bogus"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "value should be one of" in result.stderr and "init|prelu|slopes|all" in result.stderr


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--init_depths=25", "non-empty subset of (30, 22)"),
        ("--init_depths=twenty", "--init_depths takes depths such as 22,30"),
        ("--weight_decay=-0.1", "`weight_decay` must be >= 0"),
        ("--init_learning_rate=0", "`init_learning_rate` must be > 0"),
    ],
)
def test_wrong_override_fails_before_any_run(tmp_path, flag, message):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "training", "reproduce.py"),
            "--study=init",
            flag,
            f"--output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert not os.listdir(tmp_path)
