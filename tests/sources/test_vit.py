"""The built-in Vision Transformer: shapes, ONNX export with a dynamic batch, a short training run."""

import numpy as np
import pytest

from optimizer.sources.vit import vit_digits


def test_forward_shape_and_arguments():
    import torch

    module = vit_digits().eval()
    with torch.no_grad():
        assert module(torch.rand(3, 1, 32, 32)).shape == (3, 10)
        assert vit_digits(num_classes=4, in_channels=3, patch_size=4).eval()(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match="multiple of"):
        vit_digits(patch_size=5)


@pytest.mark.parametrize("dynamo", [True, False])
def test_export_dynamic_batch_matches_torch(tmp_path, dynamo):
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    module = vit_digits().eval()
    path = tmp_path / "vit.onnx"
    kwargs = ({"dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=1024)},), "external_data": False}
              if dynamo else {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}})
    torch.onnx.export(module, (torch.rand(2, 1, 32, 32),), str(path), input_names=["input"], output_names=["logits"],
                      opset_version=18 if dynamo else 17, dynamo=dynamo, **kwargs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.rand(batch, 1, 32, 32)
        with torch.no_grad():
            expected = module(x).numpy()
        np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-4, rtol=1e-4)


def test_trains_on_a_subset(splits):
    import torch

    from optimizer.sources.data import Splits
    from optimizer.sources.builtin import train

    tx, ty = splits.train["input"][:256], splits.train_labels[:256]
    x, y = torch.from_numpy(tx), torch.from_numpy(ty)
    small = Splits(tx, ty, splits.calibration["input"][:8], splits.evaluation["input"][:8], splits.evaluation_labels[:8])
    torch.manual_seed(0)
    module = vit_digits().eval()

    def loss():
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(module(x), y))

    before = loss()
    train(module, small, epochs=2, seed=0, lr=3e-3)  # 8 steps: learning, not accuracy
    assert not module.training and loss() < before
