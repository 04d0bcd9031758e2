using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests;

public class TorchRuntimeTests
{
    [Fact]
    public void TensorOpAndBackwardRunInsideTheTestHost()
    {
        var x = tensor(new float[] { 1, 2, 3 }, requires_grad: true);
        var y = (x * x).sum();
        y.backward();
        Assert.Equal(14f, y.item<float>(), 5);
        Assert.Equal(new float[] { 2, 4, 6 }, x.grad!.data<float>().ToArray());
    }
}
