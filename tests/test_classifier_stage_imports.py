"""The feature-model stages (and the selection) do not import torch: it costs each stage
about 3 s of CPU and they train no network (the CNN's stage does, through ``cnn_fit``). The
evaluate stage's main process neither: its worker process predicts with the CNNs."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "stage",
    [
        "train_classifier",
        "select_classifiers",
        "classifier_copies",
        "reencoded_test_songs",
        "evaluate_classifiers",
    ],
)
def test_feature_model_stage_imports_no_torch(stage: str) -> None:
    code = (
        "import runpy, sys; sys.argv = ['x']; "
        f"runpy.run_path('stages/{stage}.py', run_name='not_main'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
