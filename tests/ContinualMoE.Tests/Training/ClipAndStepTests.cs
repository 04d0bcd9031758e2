using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

/// <summary>The trainer and backbone pretraining update through Optimizers.ClipAndStep, so the clipping setting is
/// honoured (pretraining used a literal 1.0 beside its settings before).</summary>
public class ClipAndStepTests
{
    private static (Parameter Weight, Tensor After) StepOnce(double? clip)
    {
        var weight = new Parameter(zeros(4));
        var settings = new OptimizerSettings { Kind = OptimizerKind.Sgd, LearningRate = 1.0, Momentum = 0, ClipGradNorm = clip };
        using var optimizer = Optimizers.Create([new ParameterGroup("w", [weight])], settings);
        weight.grad = tensor(new float[] { 3, 4, 0, 0 });   // norm 5
        Optimizers.ClipAndStep(optimizer, [weight], settings);
        return (weight, weight.detach().clone());
    }

    [Fact]
    public void ClipsTheGradientNormToTheSetting()
    {
        var (_, after) = StepOnce(1.0);
        Assert.Equal(1.0, after.norm().item<float>(), 4);     // step = -lr * grad / 5
        Assert.Equal(-0.6f, after[0].item<float>(), 4);
    }

    [Fact]
    public void WithoutTheSettingTheGradientIsUnchanged()
    {
        var (_, after) = StepOnce(null);
        Assert.Equal(5.0, after.norm().item<float>(), 4);
    }
}
